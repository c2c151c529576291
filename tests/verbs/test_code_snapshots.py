"""Snapshots wired into launch, gc, staleness and invalidate's matching, on FakeBackend."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, LocalExecutor, Task, paths, verbs
from experiments.backends.fake import FakeBackend
from experiments.errors import ExperimentsError, SnapshotError
from experiments.session import Session
from experiments.tracking.staleness import params_reason
from experiments.verbs.invalidate import matches, parse_where
from experiments.worker import specs


@dataclass(frozen=True)
class Pre(Artifact):
    lr: float
    opts: dict[str, int] = field(default_factory=lambda: {"depth": 2})

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def _world(tmp_path: Path, **kw: object) -> tuple[Session, FakeBackend, Path]:
    code = tmp_path / "code"
    if not code.exists():
        code.mkdir(parents=True)
        (code / "train.py").write_text("print('hi')\n")
    ex = LocalExecutor(project="p", artifact_path=str(code / "art"), code_path=str(code),
                       **kw)  # type: ignore[arg-type]
    ex.stage("pre", ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2]}))
    fake = FakeBackend()
    return Session.open(ex, backend="fake", instances={"fake": fake}), fake, code


@pytest.fixture
def home() -> Path:
    return Path(os.environ["EXPERIMENTS_HOME"])


def _config(home: Path, **keys: object) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps({"log_directory": "~/.experiments/logs",
                                                  **keys}))


def test_launch_snapshots_once_and_every_job_runs_in_it(tmp_path: Path,
                                                        home: Path) -> None:
    session, _fake, code = _world(tmp_path)
    result = verbs.launch(session)
    snap = result.snapshot
    assert snap is not None and not snap.reused
    assert snap.path == str(paths.snapshots_dir(home) / snap.id / "code")
    assert (Path(snap.path) / "train.py").exists() and not (Path(snap.path) / "art").exists()
    assert {r.snapshot for r in result.records} == {snap.id}
    header = specs.read_header(result.records[0].spec_dir)
    assert header.code_path == snap.path and header.live_code_path == str(code)
    assert header.snapshot is not None and header.snapshot.id == snap.id


def test_snapshot_off_by_executor_or_config(tmp_path: Path, home: Path) -> None:
    session, _fake, code = _world(tmp_path, snapshot_code=False)
    result = verbs.launch(session)
    assert result.snapshot is None and {r.snapshot for r in result.records} == {None}
    assert specs.read_header(result.records[0].spec_dir).code_path == str(code)
    _config(home, code_snapshots=False)
    session, _fake, _code = _world(tmp_path / "b")
    assert verbs.launch(session).snapshot is None


def test_snapshot_past_the_limit_stops_launch_before_submitting(
        tmp_path: Path, home: Path) -> None:
    _config(home, snapshot_max_mb=0.001)
    session, fake, code = _world(tmp_path)
    (code / "weights.bin").write_bytes(b"\0" * 5000)
    with pytest.raises(SnapshotError, match="snapshot_max_mb") as info:
        verbs.launch(session)
    assert "weights.bin" in str(info.value)
    assert fake.calls["launch"] == 0 and session.records() == []


def test_gc_keeps_the_snapshot_of_a_queued_job(tmp_path: Path, home: Path) -> None:
    session, fake, code = _world(tmp_path)
    queued = verbs.launch(session).snapshot
    (code / "train.py").write_text("print('edited')\n")
    ex2 = dataclasses.replace(session.experiment, stages={"pre": ArtifactSet([Pre(lr=0.3)])})
    session2 = Session.open(ex2, backend="fake", instances={"fake": fake})  # one scheduler
    result2 = verbs.launch(session2)
    finished = result2.snapshot
    assert queued and finished and queued.id != finished.id
    fake.finish(result2.records[0].job_id or "")
    store = paths.snapshots_dir(home)
    old = time.time() - 3 * 86400
    for snap_id in (queued.id, finished.id):
        os.utime(store / snap_id, (old, old))
    result, _warnings = verbs.gc_snapshots(session, older_than_days=1, dry_run=True)
    assert [r.id for r in result.removed] == [finished.id] and (store / finished.id).exists()
    result, _warnings = verbs.gc_snapshots(session, older_than_days=1)
    assert result.kept_in_use == (queued.id,)
    assert sorted(p.name for p in store.iterdir()) == [queued.id]
    for rec in session.records():
        fake.finish(rec.job_id or "")
    result, _warnings = verbs.gc_snapshots(session, older_than_days=1)
    assert [r.id for r in result.removed] == [queued.id]


def test_params_reason_names_the_changed_field() -> None:
    assert params_reason({"lr": 0.1, "k": [1]}, {"lr": 0.1, "k": (1,)}) is None
    why = params_reason({"lr": 0.1}, {"lr": 0.1, "scale": 2.0})
    assert why and "scale is new" in why
    why = params_reason({"lr": 0.1, "scale": 1.0}, {"lr": 0.1, "scale": 2.0})
    assert why and "scale was 1.0, now 2.0" in why
    assert params_reason(None, {"lr": 0.1}) is None  # nothing recorded: not stale


def test_where_values_are_json_when_they_parse() -> None:
    assert parse_where(["i=0", "name=abc", "base.lr=0.1", "f=true", "s=\"0\""]) == [
        (["i"], 0), (["name"], "abc"), (["base", "lr"], 0.1), (["f"], True), (["s"], "0")]
    assert matches(1.0, 1) and matches(0, 0) and not matches("0", 0) and not matches(0, "0")
    assert not matches(True, 1) and not matches(1, True) and matches(True, True)
    assert matches((1, 2), [1, 2]) and matches({"a": 1}, {"a": 1.0})
    with pytest.raises(ExperimentsError):
        parse_where(["novalue"])


def test_invalidate_matches_nested_dict_keys(tmp_path: Path) -> None:
    session, _fake, _code = _world(tmp_path)
    session.experiment = dataclasses.replace(session.experiment, stages={
        "pre": ArtifactSet([Pre(lr=0.1), Pre(lr=0.1, opts={"depth": 3})])})
    root = session.experiment.artifact_path
    for art in session.experiment.stages["pre"]:
        os.makedirs(paths.artifact_dir(root, art.relpath))
        Path(paths.done_marker(root, art.relpath)).write_text("{}")
    found = verbs.select_invalidation(session, ["pre"], where=["opts.depth=3"])
    assert [t.relpath for t in found.targets] == [Pre(lr=0.1, opts={"depth": 3}).relpath]
    verbs.apply_invalidation(found)
    assert not os.path.exists(paths.done_marker(root, found.targets[0].relpath))
    assert len(list(Path(root).rglob(".done.invalidated-*"))) == 1
    assert len(list(Path(root).rglob(".done"))) == 1


def test_code_path_that_is_the_artifact_root_runs_live_with_a_warning(tmp_path: Path) -> None:
    ex = LocalExecutor(project="p", artifact_path=str(tmp_path), code_path=str(tmp_path))
    ex.stage("pre", ArtifactSet.from_product(cls=Pre, params={"lr": [0.1]}))
    session = Session.open(ex, backend="fake", instances={"fake": FakeBackend()})
    result = verbs.launch(session)
    assert result.snapshot is None and result.records[0].snapshot is None
    assert any("no code snapshot" in w for w in result.warnings)
    assert specs.read_header(result.records[0].spec_dir).code_path == str(tmp_path)


def _fake_build(root: str, art: Artifact, snapshot: str) -> None:
    """A built artifact as the worker leaves it (provenance naming ``snapshot``)."""
    from experiments.model.identity import encode_params

    os.makedirs(paths.artifact_dir(root, art.relpath), exist_ok=True)
    meta = {"params": encode_params(art), "provenance": {
        "build_id": "b1", "dependencies": {}, "code": {"snapshot": snapshot}}}
    Path(paths.meta_file(root, art.relpath)).write_text(json.dumps(meta))
    Path(paths.done_marker(root, art.relpath)).write_text(json.dumps({"build_id": "b1"}))


def test_code_change_is_stale_only_when_the_config_asks(tmp_path: Path, home: Path) -> None:
    session, _fake, code = _world(tmp_path)
    snap = verbs.launch(session).snapshot
    assert snap is not None
    root = session.experiment.artifact_path
    for art in session.experiment.stages["pre"]:
        _fake_build(root, art, snap.id)
    assert verbs.status(session).stale == []
    (code / "train.py").write_text("print('edited')\n")
    assert verbs.status(session).stale == []  # off by default
    _config(home, stale_on_code_change=True)
    session, _fake, _code = _world(tmp_path)
    stale = verbs.status(session).stale
    assert len(stale) == 2 and all(f"code snapshot {snap.id}" in s.reason for s in stale)
    (code / "train.py").write_text("print('hi')\n")  # back to the snapshot's content
    assert verbs.status(session).stale == []
