"""Task specs: O(1) lookup of one task among many."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from experiments.launching import specs

N = 50_000


@pytest.fixture(scope="module")
def big_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = str(tmp_path_factory.mktemp("spec") / "job")
    tasks = ({"id": f"{i:012x}", "relpath": f"M/i={i}-{i:012x}", "note": "é" * (i % 7),
              "steps": [{"kind": "run_command", "command": f"echo {i}"}]} for i in range(N))
    assert specs.write_spec(directory, {"project": "p", "stage": "s"}, tasks) == N
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
    assert specs.read_header(big_spec) == {"project": "p", "stage": "s"}


def test_index_past_the_end_is_index_error(big_spec: str) -> None:
    for index in (N, N + 1, 10 * N):
        with pytest.raises(IndexError, match=rf"task index {index} is out of range"):
            specs.read_task(big_spec, index)


def test_negative_index_is_index_error(big_spec: str) -> None:
    with pytest.raises(IndexError, match="out of range"):
        specs.read_task(big_spec, -1)


def test_empty_spec(tmp_path: Path) -> None:
    assert specs.write_spec(str(tmp_path / "e"), {}, []) == 0
    with pytest.raises(IndexError):
        specs.read_task(str(tmp_path / "e"), 0)
