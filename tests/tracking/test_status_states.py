"""One state model everywhere (issue 24 item 1) and accepting a change on purpose, on
FakeBackend: after a default changes (``num_examples`` 500 → 4000), the results built with 500
are *stale* in ``status`` (counts, ``--json``, exit code), ``wait``, ``table`` (CSV, JSON,
pandas: with the parameters they were built with, the changed ones marked), ``logs`` and the
Python API; ``accept`` declares them current, on the record, until ``invalidate``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from experiments import paths, verbs
from experiments.backends.fake import FakeBackend
from experiments.cli import main as cli_main
from experiments.errors import ExperimentsError
from experiments.tracking.status import ArtifactState as S
from tests.support.truth_world import build, build_all, experiment, record, session


def _run(ex: object, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli_main.run(ex, list(args))  # type: ignore[arg-type]
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def changed(tmp_path: Path, fake: FakeBackend) -> object:
    """Everything built with num_examples=500; the experiment now says 4000."""
    build_all(session(experiment(tmp_path), fake), fake)
    return experiment(tmp_path, num_examples=4000)


def test_status_counts_stale_and_its_json_and_exit_code_say_so(
        changed: object, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(changed, "status", capsys=capsys)
    assert code == 5, out
    assert "num_examples was 500, now 4000" in out
    code, out = _run(changed, "status", "--json", capsys=capsys)
    doc = json.loads(out)
    assert code == 5 and doc["version"] == 2 and doc["outcome"] == "stale"
    by_stage = {s["stage"]: s for s in doc["stages"]}
    assert by_stage["eval"]["counts"] == {"stale": 2}
    assert by_stage["board"]["counts"] == {"stale": 1}  # its dependencies are stale
    assert by_stage["train"]["counts"] == {"built": 2}
    assert all("num_examples was 500, now 4000" in t["reason"]
               for t in by_stage["eval"]["stale"])
    assert _run(changed, "status", "--allow-stale", capsys=capsys)[0] == 0
    assert _run(changed, "wait", capsys=capsys)[0] == 5
    assert _run(changed, "wait", "--allow-stale", capsys=capsys)[0] == 0
    assert _run(changed, "status", "train", capsys=capsys)[0] == 0  # all built and current


def test_the_python_api_says_stale(changed: object, fake: FakeBackend) -> None:
    s = session(changed, fake)  # type: ignore[arg-type]
    report = verbs.status(s)
    assert {st.stage: st.counts for st in report.stages}["eval"] == {S.STALE: 2}
    assert verbs.outcome(report) is verbs.Outcome.STALE
    assert verbs.outcome(report, allow_stale=True) is verbs.Outcome.BUILT
    views = verbs.artifacts(s, "eval")
    assert [v.state for v in views] == [S.STALE, S.STALE]
    assert "num_examples was 500" in views[0].detail


def test_table_shows_what_each_result_was_built_with(changed: object, fake: FakeBackend,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(changed, "table", "eval", "--format", "csv", capsys=capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["num_examples"] for r in rows] == ["500", "500"]
    assert [r["state"] for r in rows] == ["stale", "stale"]
    assert [json.loads(r["changed"]) for r in rows] == [{"num_examples": 4000}] * 2
    code, out = _run(changed, "table", "eval", "--json", capsys=capsys)
    doc = json.loads(out)
    assert doc["version"] == 2 and doc["stage"] == "eval" and "changed" in doc["columns"]
    assert [r["num_examples"] for r in doc["rows"]] == [500, 500]
    code, out = _run(changed, "table", "eval", capsys=capsys)
    assert "500 (now 4000)" in out
    table = verbs.table(session(changed, fake), "eval")  # type: ignore[arg-type]
    assert [r["num_examples"] for r in table.records()] == [500, 500]
    try:
        frame = table.to_pandas()  # the same rows (pandas is an optional extra)
    except ExperimentsError as exc:
        assert "pip install" in str(exc)
    else:
        assert list(frame["num_examples"]) == [500, 500]
        assert list(frame["state"]) == ["stale"] * 2


def test_logs_says_the_newest_attempt_is_stale(changed: object, fake: FakeBackend,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(changed, "logs", "eval", "--where", "train.seed=1", capsys=capsys)
    assert code == 0 and "stale (parameters differ" in out, out


def test_accept_declares_chosen_stale_results_current_until_invalidate(
        tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    s = session(experiment(tmp_path), fake)
    build_all(s, fake)
    today = experiment(tmp_path, solver=True)  # a field whose default keeps the old behaviour
    code, out = _run(today, "status", "eval", capsys=capsys)
    assert code == 5 and "solver is new" in out
    code, out = _run(today, "accept", "eval", "--where", "train.seed=1", "--yes", "--reason",
                     "solve was the only solver", capsys=capsys)
    assert code == 0 and "Accepted 1 result(s)" in out, out
    status = verbs.status(session(today, fake))
    assert {st.stage: st.counts for st in status.stages}["eval"] == {S.BUILT: 1, S.STALE: 1}
    _run(today, "accept", "eval", "--yes", capsys=capsys)
    code, out = _run(today, "status", "eval", capsys=capsys)
    assert code == 0, out
    view = verbs.artifacts(session(today, fake), "eval")[0]
    entry = view.provenance["accepted"][-1]
    assert entry["reason"] == "solve was the only solver" and entry["at"][:2] == "20"
    assert "solver is new" in entry["was"] and entry["params"]["solver"] == "solve"
    code, out = _run(today, "history", capsys=capsys)
    assert "Accepted on purpose" in out and "solve was the only solver" in out
    assert json.loads(_run(today, "history", "--json", capsys=capsys)[1])["accepted"]
    # a later change makes it stale again: accepted is what was accepted, not forever
    later = experiment(tmp_path, solver=True, num_examples=9)
    assert _run(later, "status", "eval", capsys=capsys)[0] == 5
    # invalidate undoes it: the result is rebuilt, its new record has no acceptance
    assert _run(today, "invalidate", "eval", "--yes", capsys=capsys)[0] == 0
    verbs.launch(session(today, fake), ["eval"])
    build(fake, record(session(today, fake), "eval"))
    meta = json.loads(Path(paths.meta_file(today.artifact_path, view.relpath)).read_text())
    assert "accepted" not in meta and meta["params"]["solver"] == "solve"


def test_accept_without_a_terminal_needs_yes_and_names_a_typo(
        changed: object, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(changed, "accept", "eval", capsys=capsys)
    assert code == 2 and "pass --yes" in out
    code, out = _run(changed, "accept", "eval", "--where", "num_exmples=500", "--yes",
                     capsys=capsys)
    assert code == 2 and "'num_exmples'" in out and "did you mean 'num_examples'" in out


def test_stale_list_is_cut_without_v_and_whole_with_it(
        tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.truth_world import FakeExecutor, classes

    train, _ev, _board = classes()
    ex = FakeExecutor(project="many", artifact_path=str(tmp_path / "M"),
                      code_path=str(tmp_path))
    ex.stage("train", [train(seed=i) for i in range(25)])
    s = session(ex, fake)
    verbs.launch(s)
    rec = record(s, "train")
    build(fake, rec)
    for i, (_, relpath) in enumerate(rec.tasks):  # recorded with another parameter set
        meta = Path(paths.meta_file(ex.artifact_path, relpath))
        data = json.loads(meta.read_text())
        data["params"]["old"] = i
        meta.write_text(json.dumps(data))
    code, out = _run(ex, "status", capsys=capsys)
    assert code == 5 and out.count("stale Train") == 20 and "… and 5 more" in out
    code, out = _run(ex, "status", "-v", capsys=capsys)
    assert out.count("stale Train") == 25
    doc = json.loads(_run(ex, "status", "--json", capsys=capsys)[1])
    assert len(doc["stages"][0]["stale"]) == 25
