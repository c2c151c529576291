"""The worker's side of dependency precision: exit 0 when asked, sparse indices, dependents."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from experiments import _proc, paths
from experiments.worker import build as worker
from experiments.worker import common as worker_base
from experiments.worker import specs


def test_ordinary_failures_exit_0_only_when_the_backend_asks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(worker_base.EXIT_ZERO_ENV, raising=False)
    assert worker.scheduler_exit_code(worker.EXIT_FAILED) == worker.EXIT_FAILED
    monkeypatch.setenv(worker_base.EXIT_ZERO_ENV, "1")
    assert worker.scheduler_exit_code(worker.EXIT_FAILED) == 0
    assert worker.scheduler_exit_code(worker.EXIT_DEPENDENCY_FAILED) == 0
    assert worker.scheduler_exit_code(worker.EXIT_BUSY) == worker.EXIT_BUSY
    assert worker.scheduler_exit_code(143) == 143  # what the scheduler kills stays a failure


def test_a_sparse_spec_maps_array_indices_to_tasks(tmp_path: Path) -> None:
    specs.write_spec(str(tmp_path), specs.SpecHeader("p", "s", "j", "/a", "/c", indices=(1, 3)),
                     [{"relpath": "a"}, {"relpath": "b"}])
    header = specs.read_header(str(tmp_path))
    assert specs.read_task(str(tmp_path), header.position(3)) == {"relpath": "b"}
    assert specs.SpecHeader("p", "s", "j", "/a", "/c").position(3) == 3
    with pytest.raises(IndexError):
        header.position(2)


def test_a_killed_worker_cancels_and_records_its_dependents_transitively(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "art"
    up, mid, low = (tmp_path / n for n in ("up", "mid", "low"))
    for d in (up, mid, low):
        (d / paths.DEPENDENTS).mkdir(parents=True)
    for spec, dependent, job, relpath in ((up, mid, "20", "B/x"), (mid, low, "30", "C/x")):
        (spec / paths.DEPENDENTS / f"{job}.json").write_text(json.dumps(
            {"job": job, "spec_dir": str(dependent), "artifact_path": str(root),
             "tasks": {"4": relpath}}))
    (low / paths.CANCEL_REQUESTED).touch()  # ... unless the user is cancelling it anyway
    calls: list[list[str]] = []
    monkeypatch.setattr(_proc, "run", lambda argv, **kw: calls.append(list(argv)))
    worker.cancel_dependents(str(up), 4, "A/x", "interrupted by SIGTERM")
    worker.cancel_dependents(str(up), 5, "A/y", "interrupted by SIGTERM")  # nobody waits on 5
    assert calls == [["scancel", "20_4"]]
    status = json.loads((root / "B/x" / paths.STATUS).read_text())
    assert status["state"] == "dependency_failed" and "A/x" in status["error"]
    assert not os.path.exists(root / "C/x" / paths.STATUS)
