"""The local backend's capacity and admission, without processes: config, detection, fitting."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from experiments import ConfigError
from experiments.backends.base import common_resources
from experiments.backends.local import capacity as local_capacity
from experiments.backends.local.backend import LocalBackend
from experiments.backends.local.capacity import Capacity, capacity
from experiments.backends.local.runner import Runner, Slot, format_duration
from experiments.config import settings as cfg
from experiments.errors import DefinitionError


@pytest.mark.parametrize("local, match", [
    ([1], "local must be an object"),
    ({"gpu": 2}, "unknown key local.gpu"),
    ({"cpus": 0}, "local.cpus must be an integer >= 1"),
    ({"gpus": -1}, "local.gpus must be an integer >= 0"),
    ({"gpus": 1.5}, "local.gpus must be an integer"),
    ({"gpus": True}, "local.gpus must be an integer"),
    ({"mem_gb": 0}, "local.mem_gb must be a number of GB"),
    ({"mem_gb": "512"}, "local.mem_gb must be a number of GB"),
])
def test_bad_local_values_name_the_file_and_key(local: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        cfg.validate({"local": local}, Path("/x/config.json"))
    assert "/x/config.json" in str(info.value)


def test_local_keys_may_be_left_out() -> None:
    assert cfg.validate({}, Path("c.json")).local == {}
    got = cfg.validate({"local": {"gpus": 8, "mem_gb": 0.5}}, Path("c.json")).local
    assert got == {"gpus": 8, "mem_gb": 0.5}


def test_config_wins_over_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_capacity, "detect_gpus", lambda: ())
    cap = capacity({"cpus": 64, "gpus": 8, "mem_gb": 512})
    assert (cap.cpus, cap.gpus, cap.mem_mb) == (64, 8, 512 * 1024)
    assert cap.gpu_ids == tuple(str(i) for i in range(8))
    assert "config.json" in cap.source


def test_visible_devices_are_the_indices_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,7")
    assert capacity({}).gpu_ids == ("2", "5", "7")
    assert capacity({"gpus": 2}).gpu_ids == ("2", "5")  # the config takes a share of them
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert capacity({}).gpus == 0


def test_memory_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384000 kB\nMemFree: 1 kB\n")
    assert local_capacity.detect_mem_mb(str(meminfo)) == 16000
    assert local_capacity.detect_mem_mb(str(tmp_path / "none")) is None


def test_an_artifact_that_can_never_fit_is_refused_naming_it_and_the_machine() -> None:
    backend = LocalBackend(machine=Capacity(4, 8192, ("0", "1")))
    assert backend.resolve({"gpus": "A100:2"}, "Train seed=1").gpus == 2
    for reqs, what in (({"gpus": 3}, "3 GPUs"), ({"cpus": 5}, "5 CPUs"),
                       ({"mem": 9}, "9 GB of memory")):
        with pytest.raises(DefinitionError, match="Train seed=1 asks for " + what) as info:
            backend.resolve(reqs, "Train seed=1")
        assert "4 CPUs, 2 GPUs, 8.0 GB" in str(info.value)


def test_time_limits_are_written_as_slurm_does() -> None:
    assert format_duration(5) == "0:00:05"
    assert format_duration(12 * 3600) == "12:00:00"
    assert format_duration(86400 + 61) == "1-0:01:01"


def _slot(name: str, index: int, **reqs: Any) -> Slot:
    res = common_resources(reqs, "test")
    job = SimpleNamespace(record=SimpleNamespace(name=name), group=SimpleNamespace(resources=res),
                          tasks=())
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
