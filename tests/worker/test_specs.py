"""Task specs: O(1) lookup of one task among many."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from experiments.errors import SpecError
from experiments.worker import specs

N = 50_000
HEADER = specs.SpecHeader("p", "s", "j", "/art", "/code")


@pytest.fixture(scope="module")
def big_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = str(tmp_path_factory.mktemp("spec") / "job")
    tasks = ({"id": f"{i:012x}", "relpath": f"M/i={i}-{i:012x}", "note": "é" * (i % 7),
              "steps": [{"kind": "run_command", "command": f"echo {i}"}]} for i in range(N))
    assert specs.write_spec(directory, HEADER, tasks) == N
    return directory


@pytest.mark.parametrize("index", [0, 1, N // 2, N - 2, N - 1])
def test_read_task_returns_the_right_task(big_spec: str, index: int) -> None:
    task = specs.read_task(big_spec, index)
    assert task["id"] == f"{index:012x}"
    assert task["relpath"] == f"M/i={index}-{index:012x}"
    assert task["note"] == "é" * (index % 7)
    assert task["steps"] == [{"kind": "run_command", "command": f"echo {index}"}]


def test_read_task_is_fast(big_spec: str) -> None:
    start = time.perf_counter()
    for index in (0, N // 2, N - 1) * 10:
        specs.read_task(big_spec, index)
    assert time.perf_counter() - start < 0.1  # 30 lookups; parsing the whole file takes ~100x


def test_header_round_trip(big_spec: str) -> None:
    assert specs.read_header(big_spec) == HEADER


def test_index_past_the_end_is_index_error(big_spec: str) -> None:
    for index in (N, N + 1, 10 * N):
        with pytest.raises(IndexError, match=rf"task index {index} is out of range"):
            specs.read_task(big_spec, index)


def test_negative_index_is_index_error(big_spec: str) -> None:
    with pytest.raises(IndexError, match="out of range"):
        specs.read_task(big_spec, -1)


def test_empty_spec(tmp_path: Path) -> None:
    assert specs.write_spec(str(tmp_path / "e"), HEADER, []) == 0
    with pytest.raises(IndexError):
        specs.read_task(str(tmp_path / "e"), 0)


@pytest.mark.parametrize("note", ["plain", "é"], ids=["ascii", "utf-8"])
def test_lines_are_compact_json_at_their_indexed_offsets(tmp_path: Path, note: str) -> None:
    """An all-ASCII spec (encoded in one piece) and a UTF-8 one (line by line) hold the same
    bytes a line-by-line ``json.dumps`` gives, and the index finds every line."""
    tasks = [{"id": f"{i:012x}", "relpath": f"M/i={i}", "note": note * i,
              "params": {"x": i, "s": "a\nb"}} for i in range(5)]
    specs.write_spec(str(tmp_path), HEADER, iter(tasks))
    lines = [json.dumps(t, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
             for t in tasks]
    assert (tmp_path / "tasks.jsonl").read_bytes() == b"".join(lines)
    assert [specs.read_task(str(tmp_path), i) for i in range(5)] == tasks


# -- the header: typed, versioned ---------------------------------------------------------------
FULL = specs.SpecHeader(
    "p", "s", "j", "/art", "/snap/tree", umask=0o027,
    snapshot=specs.CodeSnapshot("9c0f", "/snap/tree", {"commit": "abc", "branch": "main",
                                                       "dirty": False, "diff_hash": None}),
    live_code_path="/code", trusted_uids=(1001,), trusted_gids=(50, 51), indices=(4, 9),
    packs=(0, 2, 3), setup=("module load x",),
    checkpoint=specs.Checkpoint("USR2", 2, requeue=False))

# job.json as the release before versions wrote it, for a job that may still be queued
PREVIOUS_RELEASE = {
    "project": "p", "stage": "s", "job_name": "j", "artifact_path": "/art",
    "code_path": "/snap/tree", "umask": 23, "live_code_path": "/code",
    "snapshot": {"id": "9c0f", "path": "/snap/tree", "git": None},
    "trusted_uids": [1001], "trusted_gids": [], "packs": [0, 2, 3], "indices": [4, 9],
    "checkpoint": {"signal": "USR2", "max_requeues": 2, "requeue": False}}


def test_every_field_of_the_header_round_trips(tmp_path: Path) -> None:
    specs.write_spec(str(tmp_path), FULL, [])
    assert json.loads((tmp_path / specs.HEADER).read_text())["version"] == specs.VERSION
    assert specs.read_header(str(tmp_path)) == FULL


def test_a_header_without_a_version_is_read_as_version_1(tmp_path: Path) -> None:
    (tmp_path / specs.HEADER).write_text(json.dumps(PREVIOUS_RELEASE))
    header = specs.read_header(str(tmp_path))
    assert header.version == 1 and header.umask == 23 and header.live_code_path == "/code"
    assert header.checkpoint == specs.Checkpoint("USR2", 2, requeue=False)
    assert header.positions(9) == range(2, 3) and header.snapshot is not None
    assert header.to_json() == {**PREVIOUS_RELEASE, "version": 1}  # nothing lost or renamed


@pytest.mark.parametrize("change, message", [
    ({"version": 2}, r"has format version 2, written by a newer version of experiments"),
    ({"version": "1"}, r"is damaged \(version '1' is not a format version\)"),
    ({"artifact_path": None}, r"is damaged \('artifact_path' is missing or not a string\)"),
    ({"trusted_uids": ["x"]}, r"is damaged \(ValueError"),
])
def test_a_header_this_version_cannot_read_is_refused_naming_the_file(
        tmp_path: Path, change: dict[str, object], message: str) -> None:
    (tmp_path / specs.HEADER).write_text(json.dumps({**PREVIOUS_RELEASE, **change}))
    with pytest.raises(SpecError, match=message) as info:
        specs.read_header(str(tmp_path))
    assert str(tmp_path / specs.HEADER) in str(info.value)


def test_a_header_that_is_not_json_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / specs.HEADER).write_text("{not json")
    with pytest.raises(SpecError, match=f"spec {tmp_path / specs.HEADER} is damaged"):
        specs.read_header(str(tmp_path))
