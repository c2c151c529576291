"""Store format 2: per-task fields as columns (issue 26). Read back after a crash at any write,
format-1 records (queued jobs of users who upgrade) still read, damage named, never guessed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from experiments import StoreError
from experiments.tracking import record_format as rf
from experiments.tracking.store import JobRecord, RecordState, Store

REPO = Path(__file__).resolve().parents[2]
ENDED = {"state": "cancelled", "raw": "CANCELLED", "observed_at": "2026-12-07T03:00:00+00:00"}
WHEN = "2026-12-07T02:00:00+00:00"


def _record(name: str, n: int = 1000, stage: str = "s") -> JobRecord:
    return JobRecord(name=name, backend="slurm", stage=stage, tier=0,
                     tasks=[[f"{name}{i:015x}", f"Model/i={i}"] for i in range(n)],
                     requirements={"cpus": 1}, log_dir="/logs", submitted_at=WHEN)


def _stage_file(home: Path, stage: str = "s") -> Path:
    return home / "projects" / "proj" / stage / "jobs.json"


def test_a_record_is_stored_as_columns_and_read_back_equal() -> None:
    ended = {str(i): dict(ENDED) for i in range(1000)}
    ended["7"] = {"state": "failed", "raw": "TIMEOUT", "observed_at": ENDED["observed_at"]}
    rec = JobRecord(**{**_record("a").to_dict(), "ended": ended, "job_id": "42"})
    stored = rec.stored()
    assert stored["tasks"] == {"ids": [t[0] for t in rec.tasks],
                               "relpaths": [t[1] for t in rec.tasks]}
    table, at = stored["ended"]
    assert len(table) == 2 and len(at) == 1000 and at[7] != at[0]  # equal ends kept once
    assert len(json.dumps(stored["ended"])) < 4000  # was ~75 bytes per task
    assert JobRecord.from_dict(json.loads(json.dumps(stored))) == rec


def test_ended_maps_that_are_not_positions_are_kept_as_they_are() -> None:
    odd = {"x": dict(ENDED), "03": dict(ENDED)}
    assert rf.encode_ended(odd) == odd
    assert rf.decode_ended(rf.encode_ended(odd)) == odd


def test_ended_entries_holding_lists_are_grouped_too() -> None:
    ended = {"0": {"state": "failed", "tried": [1, 2]}, "1": {"state": "failed", "tried": [1, 2]},
             "3": {"state": "failed", "tried": [3]}}
    table, at = rf.encode_ended(ended)
    assert len(table) == 2 and at == [0, 0, -1, 1]
    assert rf.decode_ended([table, at]) == ended


def _v1(rec: JobRecord) -> dict[str, Any]:
    """A record as a format-1 release wrote it: a pair and a dict per task."""
    return rec.to_dict()


def test_format_1_records_read_the_same_and_move_to_columns_when_compacted(
        experiments_home: Path) -> None:
    old = JobRecord(**{**_record("old", 4).to_dict(), "job_id": "7", "state": "submitted",
                       "ended": {"1": dict(ENDED)}})
    path = _stage_file(experiments_home)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "project": "proj", "jobs": [_v1(old)]}))
    store = Store(experiments_home, "proj")
    assert store.records("s") == [old]
    # this release's events on a format-1 record: an end recorded in columns
    ends = {**old.ended, "2": dict(ENDED)}
    store.update("s", "old", ended=ends)
    store.add(_record("new", 3))
    expected = [JobRecord(**{**old.to_dict(), "ended": ends}), _record("new", 3)]
    assert Store(experiments_home, "proj").records("s") == expected
    store.compact("s")
    data = json.loads(path.read_text())
    assert data["version"] == rf.FORMAT_VERSION
    assert all(isinstance(j["tasks"], dict) and not isinstance(j["ended"], dict) or
               j["ended"] == {} for j in data["jobs"])
    assert Store(experiments_home, "proj").records("s") == expected


def test_a_newer_format_is_refused_naming_the_file(experiments_home: Path) -> None:
    path = _stage_file(experiments_home)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": rf.FORMAT_VERSION + 1, "project": "proj",
                                "jobs": []}))
    with pytest.raises(StoreError, match=rf"{path} has format version {rf.FORMAT_VERSION + 1}"):
        Store(experiments_home, "proj").records("s")


@pytest.mark.parametrize("damage", [
    {"tasks": {"ids": ["a", "b"], "relpaths": ["A"]}},   # columns of different lengths
    {"ended": [[], [0]]},                                 # a position naming no entry
    {"ended": [[{"state": "built"}]]},                    # not [entries, positions]
])
def test_damaged_columns_are_an_error_naming_the_file(experiments_home: Path,
                                                      damage: dict[str, Any]) -> None:
    Store(experiments_home, "proj").add(_record("a", 2))
    Store(experiments_home, "proj").compact("s")
    path = _stage_file(experiments_home)
    data = json.loads(path.read_text())
    data["jobs"][0].update(damage)
    path.write_text(json.dumps(data))
    with pytest.raises(StoreError, match=rf"{path} \(or its journal\) holds a damaged job"):
        Store(experiments_home, "proj").records("s")
    assert json.loads(path.read_text()) == data  # never reset


# A launch's writes on 1,000-task arrays, as the launcher and `status` make them: an intent,
# its job id (committed, not fsynced), the tasks' ends (columns); small compaction threshold so
# snapshots are written between them. The same operations, in order, in the checker below.
WRITER = f"""
import sys
from pathlib import Path
import experiments.tracking.store as m
m.COMPACT_MIN_BYTES = 20_000
from experiments.tracking.store import JobRecord, Store
ENDED = {ENDED!r}
store = Store(Path(sys.argv[1]), "proj")
for k in range(4):
    name = f"r{{k}}"
    store.add(JobRecord(name=name, backend="slurm", stage="s", tier=0,
                        tasks=[[f"{{name}}{{i:015x}}", f"Model/i={{i}}"] for i in range(1000)],
                        requirements={{"cpus": 1}}, log_dir="/logs", submitted_at={WHEN!r}))
    store.update("s", name, durable=False, job_id=str(k), state="submitted")
    store.update_many("s", {{name: {{"ended": {{str(i): ENDED for i in range(1000)}}}}}})
"""


def _states() -> list[list[JobRecord]]:
    """The stage after each of the writer's operations (the first: before any)."""
    out: list[list[JobRecord]] = [[]]
    for k in range(4):
        rec = _record(f"r{k}")
        out.append([*out[-1], rec])
        rec = JobRecord(**{**rec.to_dict(), "job_id": str(k), "state": "submitted"})
        out.append([*out[-1][:-1], rec])
        rec = JobRecord(**{**rec.to_dict(), "ended": {str(i): ENDED for i in range(1000)}})
        out.append([*out[-1][:-1], rec])
    return out


@pytest.mark.parametrize("crash_at", ["jobs-json-write:2", "jobs-json-write:3",
                                      "jobs-json-write:8", "jobs-snapshot-write:2",
                                      "jobs-snapshot-write:3"])
def test_a_crash_at_any_write_leaves_a_state_the_writes_went_through(
        experiments_home: Path, crash_at: str) -> None:
    env = {**os.environ, "EXPERIMENTS_CRASH_AT": crash_at, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", WRITER, str(experiments_home)], env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr  # killed at the point, not before or after
    states = _states()
    seen = Store(experiments_home, "proj").records("s")
    assert seen in states[1:-1], [(r.name, r.state, len(r.ended)) for r in seen]
    step = states.index(seen)
    # the next writer goes on from there: nothing lost, nothing twice
    store = Store(experiments_home, "proj")
    store.add(_record("after", 2))
    store.compact("s")
    again = Store(experiments_home, "proj").records("s")
    assert again == [*states[step], _record("after", 2)]
    assert [r.state for r in again].count(RecordState.SUBMITTED) == sum(
        r.state is RecordState.SUBMITTED for r in states[step])
