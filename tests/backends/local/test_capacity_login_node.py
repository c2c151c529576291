"""``--local`` on a Slurm login node (issue 16, item 8): when it counts as one, and the modest
default number of workers there (pure logic; the CLI warning is proven in tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.backends.local.capacity import LOGIN_NODE_WORKERS, Capacity, login_node
from experiments.backends.local.machine import LocalBackend
from experiments.config import settings as cfg


def test_a_found_slurm_conf_outside_an_allocation_is_a_login_node(tmp_path: Path) -> None:
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=x\n")
    assert login_node({"SLURM_CONF": str(conf)}, confs=()) == f"SLURM_CONF={conf}"
    assert login_node({}, confs=(str(tmp_path / "none"), str(conf))) == str(conf)
    # inside an allocation (salloc, srun, a batch job) running here is what was asked for
    assert login_node({"SLURM_CONF": str(conf), "SLURM_JOB_ID": "12"}, confs=()) is None
    # no configuration: no Slurm client works here either
    assert login_node({"SLURM_CONF": str(tmp_path / "gone.conf")}, confs=()) is None
    assert login_node({}, confs=()) is None


def _backend(workers: int | None, local: dict[str, float], login: str | None) -> LocalBackend:
    conf = cfg.validate({"local": local}, Path("c.json"))
    return LocalBackend(workers, conf, machine=Capacity(64, None, ()), login=login)


@pytest.mark.parametrize("workers, local, login, expected, capped", [
    (None, {}, "SLURM_CONF=/s.conf", LOGIN_NODE_WORKERS, True),   # the modest default
    (None, {}, None, None, False),                               # not a login node: no cap
    (8, {}, "SLURM_CONF=/s.conf", 8, False),                     # --workers decides
    (None, {"cpus": 16}, "SLURM_CONF=/s.conf", None, False),     # config says what is ours
    (None, {"gpus": 1}, "SLURM_CONF=/s.conf", LOGIN_NODE_WORKERS, True),  # not about CPUs
])
def test_workers_on_a_login_node(workers: int | None, local: dict[str, float],
                                 login: str | None, expected: int | None, capped: bool) -> None:
    backend = _backend(workers, local, login)
    assert backend.workers == expected
    warning = backend.site_warning()
    if login is None:
        assert warning is None
    else:
        assert warning is not None and login in warning and "no SLURM_JOB_ID" in warning
        assert (f"at most {LOGIN_NODE_WORKERS} tasks run at once" in warning) is capped
