"""The local scheduler loop's admission (experiments.backends.local.runner), without processes:
what starts now, what is held back for a bigger task, the caps, GPU indices, time limits."""

from __future__ import annotations

import tempfile
from types import SimpleNamespace
from typing import Any

from experiments.backends.local.capacity import Capacity
from experiments.backends.local.runner import Runner, Slot, format_duration
from experiments.resources import common_resources


def test_time_limits_are_written_as_slurm_does() -> None:
    assert format_duration(5) == "0:00:05"
    assert format_duration(12 * 3600) == "12:00:00"
    assert format_duration(86400 + 61) == "1-0:01:01"


def _slot(name: str, index: int, **reqs: Any) -> Slot:
    res = common_resources(reqs, "test")
    record = SimpleNamespace(name=name, spec_dir=tempfile.mkdtemp(prefix="runner-test-"))
    job = SimpleNamespace(record=record, group=SimpleNamespace(resources=res), tasks=())
    return Slot(job, index)  # type: ignore[arg-type]


def test_a_big_task_holds_back_what_it_waits_for() -> None:
    """With one GPU free, a waiting 2-GPU task keeps later 1-GPU tasks from taking it."""
    runner = Runner(Capacity(8, None, ("0", "1")), None, None)  # type: ignore[arg-type]
    first = _slot("a", 0, gpus=1)
    runner._take(first)
    assert first.gpus == ("0",)
    ready = [_slot("b", 0, gpus=2), _slot("a", 1, gpus=1), _slot("c", 0, gpus=0)]
    assert runner._startable(ready) == [ready[2]]  # the CPU task still starts
    runner._give_back(first)
    assert runner._startable(ready) == [ready[0], ready[2]]


def test_workers_and_max_parallel_cap_what_starts() -> None:
    runner = Runner(Capacity(8, None, ()), 3, None)  # type: ignore[arg-type]
    ready = [_slot("a", i, max_parallel=2) for i in range(3)] + [_slot("b", 0)]
    assert runner._startable(ready) == [ready[0], ready[1], ready[3]]
    small = Runner(Capacity(2, 1024, ()), None, None)  # type: ignore[arg-type]
    ready = [_slot("m", i, mem="600M") for i in range(2)]
    assert small._startable(ready) == [ready[0]]  # memory: only one fits
