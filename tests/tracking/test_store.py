"""The job store's own logic (experiments.tracking.store): events applied all or nothing,
writers seen by other readers, and the job record's index arithmetic. Crash safety and the
journal's cost are the scenarios of tests/reliability/test_store_journal.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments import StoreError, paths
from experiments.tracking.store import JobRecord, RecordState, Store


def _record(name: str, stage: str = "s", n: int = 2, **fields: object) -> JobRecord:
    return JobRecord(name=name, backend="fake", stage=stage, tier=0,
                     tasks=[[f"{name}{i}", f"M/{name}{i}"] for i in range(n)], **fields)


def _journal_bytes(home: Path, stage: str = "s") -> int:
    folder = paths.stage_dir(home, "p", stage)
    return sum(f.stat().st_size for f in folder.glob(f"{paths.JOURNAL_PREFIX}*"))


def test_an_update_naming_one_unknown_job_changes_none(experiments_home: Path) -> None:
    store = Store(experiments_home, "p")
    store.add(_record("a"))
    store.add(_record("b"))
    with pytest.raises(StoreError, match="has no job named zz"):
        store.update_many("s", {"a": {"job_id": "1"}, "zz": {"job_id": "2"},
                                "b": {"job_id": "3"}})
    assert [r.job_id for r in Store(experiments_home, "p").records("s")] == [None, None]
    assert [r.job_id for r in store.records("s")] == [None, None]  # nor in its own memory


def test_a_second_store_sees_what_the_first_wrote_and_the_first_sees_the_second(
        experiments_home: Path) -> None:
    first, second = Store(experiments_home, "p"), Store(experiments_home, "p")
    first.add(_record("a"))
    assert [r.name for r in second.records("s")] == ["a"]  # cached from here on
    first.add(_record("b"))
    first.update("s", "a", state=RecordState.SUBMITTED, job_id="7")
    assert [(r.name, r.job_id, r.state) for r in second.records("s")] == [
        ("a", "7", RecordState.SUBMITTED), ("b", None, RecordState.SUBMITTING)]
    second.remove("s", {"b"})
    first.compact("s")
    assert [r.name for r in second.records("s")] == ["a"]
    assert [r.name for r in first.records("s")] == ["a"]


def test_removing_names_that_are_not_there_writes_nothing(experiments_home: Path) -> None:
    store = Store(experiments_home, "p")
    store.add(_record("a"))
    before = _journal_bytes(experiments_home)
    store.remove("s", {"nope"})
    assert _journal_bytes(experiments_home) == before
    store.remove("s", {"a", "nope"})
    assert _journal_bytes(experiments_home) > before and store.records("s") == []


def test_enum_fields_are_written_as_words_and_read_back_as_members(
        experiments_home: Path) -> None:
    store = Store(experiments_home, "p")
    store.add(_record("a"))
    updated = store.update("s", "a", state=RecordState.CANCELLED)
    assert updated.state is RecordState.CANCELLED
    store.compact("s")
    text = paths.jobs_file(experiments_home, "p", "s").read_text()
    assert '"state": "cancelled"' in text
    assert Store(experiments_home, "p").records("s")[0].state is RecordState.CANCELLED


def test_stages_are_the_folders_with_a_jobs_file_and_all_records_follow_the_order_asked(
        experiments_home: Path) -> None:
    store = Store(experiments_home, "p")
    store.add(_record("b1", stage="b"))
    store.add(_record("a1", stage="a"))
    paths.stage_dir(experiments_home, "p", "empty").mkdir(parents=True)
    assert store.stages() == ["a", "b"]
    assert [r.name for r in store.all_records(["b", "a"])] == ["b1", "a1"]
    assert [r.name for r in store.all_records()] == ["a1", "b1"]
    assert store.records("never") == [] and Store(experiments_home, "other").stages() == []


def test_array_indices_packs_and_log_paths_of_a_record() -> None:
    plain = _record("a", n=3, job_id="9", log_dir="/logs")
    assert [plain.array_index(i) for i in range(3)] == [0, 1, 2]
    assert not plain.packed and plain.log_section(1) is None
    lanes = _record("b", n=3, job_id="9", log_dir="/logs", array_indices=[4, 7, 9])
    assert [lanes.array_index(i) for i in range(3)] == [4, 7, 9] and not lanes.packed
    assert lanes.log_path(1) == paths.task_log(Path("/logs"), "9", 7)
    pack = _record("c", n=3, job_id="9", log_dir="/logs", array_indices=[0, 0, 1])
    assert pack.packed and pack.log_section(1) == "M/c1"
    assert pack.log_path(1) == pack.log_path(0) != pack.log_path(2)


def test_task_ids_are_the_schedulers_and_an_artifact_of_a_pack_is_named_by_its_relpath() -> None:
    plain = _record("a", n=2, job_id="9")
    assert (plain.task_id(1), plain.address(1), plain.positions(1)) == ("9_1", "9_1", [1])
    assert plain.positions(2) == []
    lanes = _record("b", n=3, job_id="9", array_indices=[4, 7, 9])
    assert (lanes.task_id(1), lanes.address(1), lanes.positions(7)) == ("9_7", "9_7", [1])
    pack = _record("c", n=3, job_id="9", array_indices=[0, 0, 1])
    assert [pack.task_id(i) for i in range(3)] == ["9_0", "9_0", "9_1"]
    assert pack.address(1) == "9_0/M/c1" and pack.positions(0) == [0, 1]
