"""Results tables keep their own columns whatever a metrics file names its keys, and leave out
(with a note) a file that no view could show (issue 24 item 9)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from experiments import Artifact, Task
from experiments.tracking.status import ArtifactState as S
from experiments.tracking.views import MAX_DEPTH, ArtifactView, make_table, read_json_noted
from tests.support.hostile import HOSTILE


@dataclass(frozen=True)
class P(Artifact):
    lr: float

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def _view(art: P, state: S, metrics: dict[str, object]) -> ArtifactView:
    return ArtifactView(art, "s", {"lr": art.lr}, f"/out/{art.relpath}", state, {}, metrics)


def test_metric_names_never_take_a_tool_or_parameter_column() -> None:
    names = [*HOSTILE, "state", "folder", "changed", "lr", "metrics.state", "metrics.lr",
             "metrics.folder"]
    metrics = {n: i for i, n in enumerate(names)}
    table = make_table("s", [_view(P(0.1), S.FAILED, metrics), _view(P(0.2), S.BUILT, {})])
    assert len(set(table.columns)) == len(table.columns)
    assert table.columns[-3:] == ("state", "changed", "folder")
    assert table.column("state") == ["failed", "built"]
    assert table.column("folder")[0] == f"/out/{P(0.1).relpath}"
    assert table.column("lr") == [0.1, 0.2]
    for record in table.records():  # every metric is still there, under a name of its own
        assert sorted(v for k, v in record.items() if k in table.metric_columns
                      and v is not None) in ([], list(range(len(names))))
    header = next(csv.reader(io.StringIO(table.to_csv())))
    assert header.count("state") == 1 and len(header) == len(names) + 4
    assert [r["state"] for r in json.loads(table.to_json())["rows"]] == ["failed", "built"]


def test_a_deeply_nested_file_is_left_out_with_a_note(tmp_path: Path) -> None:
    cases = {
        "deep.json": '{"a": ' + "[" * 300_000 + "]" * 300_000 + "}",  # past the recursion limit
        "deepish.json": '{"a": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}",  # MAX_DEPTH + 1
        "list.json": "[1, 2]",
        "broken.json": '{"a": ',
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        data, note = read_json_noted(str(tmp_path / name))
        assert data is None and note.startswith(f"{name} ") and note.endswith("left out"), note
    ok = {"a": {"b": [[1]]}, "c": 2}
    (tmp_path / "ok.json").write_text(json.dumps(ok))
    assert read_json_noted(str(tmp_path / "ok.json")) == (ok, "")
    assert read_json_noted(str(tmp_path / "absent.json")) == (None, "")
