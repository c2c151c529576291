"""Tracking files (jobs.json): atomic, locked, never silently reset — scenario 10 of the rule."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from experiments import StoreError
from experiments.tracking.store import JobRecord, Store


def _record(name: str, stage: str = "pretrain", n_tasks: int = 2) -> JobRecord:
    return JobRecord(name=name, backend="local", stage=stage, tier=0,
                     tasks=[[f"id{i}", f"Model/x={i}-id{i}"] for i in range(n_tasks)],
                     requirements={"cpus": 1})


def test_add_update_records_round_trip(experiments_home: Path) -> None:
    store = Store(experiments_home, "proj")
    assert store.records("pretrain") == []
    assert store.stages() == []
    a, b = _record("a"), _record("b", n_tasks=3)
    store.add(a)
    store.add(b)
    store.add(_record("c", stage="finetune"))
    assert store.records("pretrain") == [a, b]
    assert store.stages() == ["finetune", "pretrain"]
    updated = store.update("pretrain", "b", job_id="123", state="submitted")
    assert updated == JobRecord(**{**b.to_dict(), "job_id": "123", "state": "submitted"})
    assert store.records("pretrain") == [a, updated]
    assert [r.name for r in store.all_records()] == ["c", "a", "b"]
    store.remove("pretrain", {"a"})
    assert [r.name for r in store.records("pretrain")] == ["b"]
    store.compact("pretrain")  # recent events live in the journal; fold them into jobs.json
    data = json.loads((experiments_home / "projects/proj/pretrain/jobs.json").read_text())
    assert data["version"] == 2 and data["project"] == "proj"
    assert data["jobs"][0]["tasks"] == {"ids": ["id0", "id1", "id2"],  # columns (format 2)
                                        "relpaths": ["Model/x=0-id0", "Model/x=1-id1",
                                                     "Model/x=2-id2"]}


def test_update_unknown_name_is_store_error(experiments_home: Path) -> None:
    store = Store(experiments_home, "proj")
    store.add(_record("a"))
    with pytest.raises(StoreError, match=r"jobs.json has no job named nope"):
        store.update("pretrain", "nope", state="cancelled")
    assert store.records("pretrain")[0].state == "submitting"


def test_times_are_iso8601_with_offset(experiments_home: Path) -> None:
    store = Store(experiments_home, "proj")
    store.add(_record("a"))
    stamp = store.records("pretrain")[0].submitted_at
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() is not None
    assert abs(time.time() - parsed.timestamp()) < 60


def test_record_ignores_unknown_fields_from_newer_versions() -> None:
    data = {**_record("a").to_dict(), "future_field": 1}
    assert JobRecord.from_dict(data) == JobRecord.from_dict(_record("a").to_dict())


@pytest.mark.parametrize("content", [
    b"", b'{"version": 1, "project": "proj", "jobs": [{"name": "a"', b"garbage\n",
    b"[]", b'{"version": 1}', b"null",
])
def test_damaged_file_is_reported_and_copied_aside(experiments_home: Path, content: bytes) -> None:
    path = experiments_home / "projects/proj/pretrain/jobs.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    store = Store(experiments_home, "proj")
    with pytest.raises(StoreError, match=rf"tracking file {path} is damaged .*a copy is kept at"):
        store.records("pretrain")
    with pytest.raises(StoreError, match="is damaged"):
        store.add(_record("b"))
    assert path.read_bytes() == content
    copies = sorted(path.parent.glob("jobs.json.damaged-*"))
    assert copies and all(c.read_bytes() == content for c in copies)


def test_non_utf8_file_is_store_error(experiments_home: Path) -> None:
    path = experiments_home / "projects/proj/pretrain/jobs.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(StoreError, match="is damaged"):
        Store(experiments_home, "proj").records("pretrain")


def _add_one(home: str, i: int) -> None:
    Store(Path(home), "proj").add(_record(f"job{i}"))


def test_fifty_concurrent_writers_lose_nothing(experiments_home: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_one, args=(str(experiments_home), i)) for i in range(50)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 50
    path = experiments_home / "projects/proj/pretrain/jobs.json"
    Store(experiments_home, "proj").compact("pretrain")  # fold the journal into jobs.json
    data = json.loads(path.read_text())
    assert sorted(r["name"] for r in data["jobs"]) == sorted(f"job{i}" for i in range(50))
    assert [p for p in path.parent.iterdir() if ".tmp-" in p.name] == []


WRITER = """
import sys
from pathlib import Path
from experiments.tracking.store import JobRecord, Store
store = Store(Path(sys.argv[1]), "proj")
i = 0
print("ready", flush=True)
while True:
    store.add(JobRecord(name=f"r{i}", backend="local", stage="s", tier=0,
                        tasks=[[f"id{j}", "x" * 200] for j in range(2000)]))
    i += 1
"""


def test_sigkilled_writer_always_leaves_a_loadable_file(tmp_path: Path) -> None:
    rng = random.Random(1234)
    homes = [tmp_path / f"h{n}" for n in range(20)]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(h)], stdout=subprocess.PIPE)
             for h in homes]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline() == b"ready\n"
        deadline = time.monotonic()
        for p in procs:  # kill each at a different moment
            deadline += rng.uniform(0.01, 0.06)
            time.sleep(max(0.0, deadline - time.monotonic()))
            os.kill(p.pid, signal.SIGKILL)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            assert p.stdout is not None
            p.stdout.close()
    assert all(p.returncode == -signal.SIGKILL for p in procs)
    counts = []
    for h in homes:
        store = Store(h, "proj")
        recs = store.records("s")  # must not raise
        assert [r.name for r in recs] == [f"r{i}" for i in range(len(recs))]
        assert all(len(r.tasks) == 2000 for r in recs)
        store.add(_record("after", stage="s"))  # the lock of the dead writer is free
        counts.append(len(recs))
        assert store.records("s")[-1].name == "after"
    assert max(counts) >= 1
