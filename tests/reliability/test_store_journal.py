"""The store's journal: cost per submission independent of history, and crash safety of appends.

Issue 11, item 6: each submission used to rewrite and fsync the whole jobs.json twice.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments import StoreError, _atomic
from experiments.config import settings as config
from experiments.tracking import store as store_mod
from experiments.tracking.store import JobRecord, RecordState, Store

REPO = Path(__file__).resolve().parents[2]


def _record(name: str, stage: str = "s", n_tasks: int = 4) -> JobRecord:
    return JobRecord(name=name, backend="slurm", stage=stage, tier=0,
                     tasks=[[f"{name}-{i:08x}", f"Model/x={i}-{name}"] for i in range(n_tasks)],
                     requirements={"cpus": 1}, log_dir="/logs")


def _stage_dir(home: Path, stage: str = "s") -> Path:
    return home / "projects" / "proj" / stage


def _write_legacy(home: Path, records: list[JobRecord], stage: str = "s") -> Path:
    """A jobs.json as written before the journal existed (format version 1, no journal key)."""
    path = _stage_dir(home, stage) / "jobs.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1, "project": "proj",
                                "jobs": [r.to_dict() for r in records]}))
    return path


class _Meter:
    """Counts bytes written (os.write and atomic rewrites) and fsyncs, in this process."""

    def __init__(self) -> None:
        self.bytes = 0
        self.fsyncs = 0

    @classmethod
    @pytest.fixture
    def installed(cls, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Meter]:
        meter = cls()
        real_write, real_fsync, real_atomic = os.write, os.fsync, _atomic.write_bytes

        def write(fd: int, data: bytes) -> int:
            meter.bytes += len(data)
            return real_write(fd, data)

        def fsync(fd: int) -> None:
            meter.fsyncs += 1
            real_fsync(fd)

        def atomic(path: str, data: bytes, *args: object, **kwargs: object) -> None:
            meter.bytes += len(data)
            real_atomic(path, data, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(_atomic, "write_bytes", atomic)
        yield meter

    def reset(self) -> None:
        self.bytes = self.fsyncs = 0


meter = _Meter.installed


def _launch_like(store: Store, prefix: str, n: int = 20) -> None:
    for i in range(n):
        store.add(_record(f"{prefix}{i}"))
        store.update("s", f"{prefix}{i}", job_id=str(1000 + i), state="submitted")


def test_cost_per_submission_does_not_grow_with_history(experiments_home: Path,
                                                        meter: _Meter) -> None:
    costs = {}
    for history in (10, 5000):
        home = experiments_home / f"h{history}"
        _write_legacy(home, [_record(f"old{i}") for i in range(history)])
        store = Store(home, "proj")
        store.add(_record("warm-up"))  # the first write migrates the old file, once
        meter.reset()
        _launch_like(store, "new")
        costs[history] = (meter.bytes, meter.fsyncs)
        assert len(store.records("s")) == history + 21
    (small_b, small_f), (big_b, big_f) = costs[10], costs[5000]
    assert big_f == small_f, costs
    assert big_b < 1.2 * small_b, f"bytes written for 20 submissions: {costs}"


def test_compaction_keeps_the_amortised_cost_constant(experiments_home: Path,
                                                      meter: _Meter,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "COMPACT_MIN_BYTES", 4096)
    store = Store(experiments_home, "proj")
    line = len(json.dumps({"op": "add", "record": _record("r0000").to_dict()})) + 1
    store.add(_record("r0000"))
    meter.reset()
    for i in range(1, 1500):
        store.add(_record(f"r{i:04d}"))
    # journal lines plus snapshots doubling in size: a small constant times the lines alone
    assert meter.bytes < 4 * 1500 * line, (meter.bytes, line)
    journals = list(_stage_dir(experiments_home).glob("jobs.journal-*.jsonl"))
    assert len(journals) == 1
    assert [r.name for r in Store(experiments_home, "proj").records("s")] == \
        [f"r{i:04d}" for i in range(1500)]


def test_pre_journal_file_is_read_and_migrated(experiments_home: Path) -> None:
    old = [_record("a"), JobRecord(**{**_record("b").to_dict(), "state": "submitted"})]
    path = _write_legacy(experiments_home, old)
    store = Store(experiments_home, "proj")
    assert store.records("s") == old
    store.add(_record("c"))
    assert "journal" in json.loads(path.read_text())  # migrated on the first write
    assert [r.name for r in Store(experiments_home, "proj").records("s")] == ["a", "b", "c"]


def test_record_state_is_an_enum_with_the_old_json_values(experiments_home: Path) -> None:
    rec = JobRecord(**{**_record("a").to_dict(), "state": "cancelled"})
    assert rec.state is RecordState.CANCELLED and rec.state == "cancelled"
    assert rec.to_dict()["state"] == "cancelled"
    assert [s.value for s in RecordState] == ["submitting", "submitted", "cancelled", "finished"]
    store = Store(experiments_home, "proj")
    store.add(_record("a"))
    store.update("s", "a", state=RecordState.FINISHED)
    assert store.records("s")[0].state is RecordState.FINISHED
    store.compact("s")
    data = json.loads((_stage_dir(experiments_home) / "jobs.json").read_text())
    assert data["jobs"][0]["state"] == "finished"


def _journal(home: Path) -> Path:
    (journal,) = _stage_dir(home).glob("jobs.journal-*.jsonl")
    return journal


def test_torn_last_line_is_ignored_then_cut_off(experiments_home: Path) -> None:
    store = Store(experiments_home, "proj")
    store.add(_record("a"))
    store.add(_record("b"))
    journal = _journal(experiments_home)
    with open(journal, "ab") as fh:
        fh.write(b'{"op": "add", "record": {"name": "torn", "back')
    fresh = Store(experiments_home, "proj")
    assert [r.name for r in fresh.records("s")] == ["a", "b"]
    fresh.add(_record("c"))
    assert [r.name for r in Store(experiments_home, "proj").records("s")] == ["a", "b", "c"]
    assert b"torn" not in journal.read_bytes()


def test_damaged_journal_line_is_reported_and_copied_aside(experiments_home: Path) -> None:
    store = Store(experiments_home, "proj")
    store.add(_record("a"))
    journal = _journal(experiments_home)
    with open(journal, "ab") as fh:
        fh.write(b"garbage\n")
    content = journal.read_bytes()
    with pytest.raises(StoreError, match=rf"tracking file {journal} is damaged .*copy is kept"):
        Store(experiments_home, "proj").records("s")
    with pytest.raises(StoreError, match="is damaged"):
        Store(experiments_home, "proj").add(_record("b"))
    assert journal.read_bytes() == content  # never reset
    assert list(journal.parent.glob(journal.name + ".damaged-*"))


CRASHING_WRITER = """
import sys
from pathlib import Path
from experiments.tracking.store import JobRecord, Store
store = Store(Path(sys.argv[1]), "proj")
for i in range(int(sys.argv[2])):
    store.add(JobRecord(name=f"r{i}", backend="slurm", stage="s", tier=0, tasks=[["i", "p"]]))
    store.update("s", f"r{i}", job_id=str(i), state="submitted")
"""


@pytest.mark.parametrize("crash_at, names, submitted", [
    ("jobs-json-write:1", [], []),            # the first intent: written, not committed
    ("jobs-json-write:4", ["r0", "r1"], ["r0"]),  # the second confirmation
    ("jobs-snapshot-write:1", [], []),        # creating the stage's first snapshot
])
def test_sigkill_between_writing_and_committing_keeps_the_old_state(
        experiments_home: Path, crash_at: str, names: list[str], submitted: list[str]) -> None:
    env = {**os.environ, "EXPERIMENTS_CRASH_AT": crash_at, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(experiments_home), "3"],
                          env=env, capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    store = Store(experiments_home, "proj")
    recs = store.records("s")
    assert [r.name for r in recs] == names
    assert [r.name for r in recs if r.state is RecordState.SUBMITTED] == submitted
    store.add(_record("after"))  # the dead writer's lock and torn line are no obstacle
    assert [r.name for r in Store(experiments_home, "proj").records("s")] == [*names, "after"]


def test_crash_after_compaction_before_journal_delete_applies_nothing_twice(
        experiments_home: Path) -> None:
    store = Store(experiments_home, "proj")
    for name in "abc":
        store.add(_record(name))
    store.update("s", "b", state="cancelled")
    journal = _journal(experiments_home)
    kept = journal.read_bytes()
    store.compact("s")
    journal.write_bytes(kept)  # as if the process died before deleting the folded journal
    expected = ["a", "b", "c"]
    assert [r.name for r in Store(experiments_home, "proj").records("s")] == expected
    Store(experiments_home, "proj").add(_record("d"))
    assert [r.name for r in Store(experiments_home, "proj").records("s")] == [*expected, "d"]
    Store(experiments_home, "proj").compact("s")
    assert not journal.exists()  # the stale journal is cleaned up by the next compaction
    assert [r.name for r in Store(experiments_home, "proj").records("s")] == [*expected, "d"]


def test_readers_never_see_records_vanish_while_a_writer_compacts(
        experiments_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "COMPACT_MIN_BYTES", 1024)
    Store(experiments_home, "proj").add(_record("first"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = ("import experiments.tracking.store as m\nm.COMPACT_MIN_BYTES = 1024\n"
              + CRASHING_WRITER)
    writer = subprocess.Popen([sys.executable, "-c", script, str(experiments_home), "400"],
                              env=env)
    seen, errors = [1], []

    def read() -> None:
        reader = Store(experiments_home, "proj")
        while writer.poll() is None:
            try:
                seen.append(len(reader.records("s")))
            except StoreError as exc:  # pragma: no cover - the failure being tested
                errors.append(exc)
    thread = threading.Thread(target=read)
    thread.start()
    assert writer.wait(120) == 0
    thread.join()
    assert errors == [] and seen == sorted(seen) and len(seen) > 10


def test_lock_file_is_not_group_or_world_writable(experiments_home: Path) -> None:
    Store(experiments_home, "proj").add(_record("a"))
    lock = _stage_dir(experiments_home) / "jobs.json.lock"
    assert lock.stat().st_mode & 0o777 == 0o600
    shutil.rmtree(_stage_dir(experiments_home, "t"), ignore_errors=True)
    Store(experiments_home, "proj", umask=0o027).add(_record("b", stage="t"))
    assert (_stage_dir(experiments_home, "t") / "jobs.json.lock").stat().st_mode & 0o777 == 0o640
    assert config.lock_mode(0o000) == 0o644  # never group/world-writable, whatever the mask


def test_records_are_copies_that_callers_may_change(experiments_home: Path) -> None:
    store = Store(experiments_home, "proj")
    store.add(_record("a"))
    mine = store.records("s")[0]
    mine.tasks[0][1] = "changed"
    mine.task_states["0"] = "failed"
    store.update("s", "a", job_id="1").tasks.append(["x", "y"])
    again = store.records("s")[0]
    assert again.tasks == _record("a").tasks and again.task_states == {}
