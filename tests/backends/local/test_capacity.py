"""What the machine offers the local backend (experiments.backends.local.capacity): the config's
`local` section, detection, and the config winning over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from experiments import ConfigError
from experiments.backends.local import capacity as local_capacity
from experiments.backends.local.capacity import capacity
from experiments.config import settings as cfg


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
