"""The local backend (experiments.backends.local.machine) without running a task: what it
refuses, how it describes a group, what it answers about local jobs, how it numbers them."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from experiments import paths
from experiments.backends.local.capacity import LOGIN_NODE_WORKERS, Capacity
from experiments.backends.local.machine import (
    LocalBackend,
    _next_job_id,
    launcher_alive,
    process_start,
)
from experiments.errors import DefinitionError
from experiments.resources import common_resources
from experiments.states import JobState, TaskKey
from experiments.tracking.store import JobRecord, RecordState


def test_an_artifact_that_can_never_fit_is_refused_naming_it_and_the_machine() -> None:
    backend = LocalBackend(machine=Capacity(4, 8192, ("0", "1")))
    assert backend.resolve({"gpus": "A100:2"}, "Train seed=1").gpus == 2
    for reqs, what in (({"gpus": 3}, "3 GPUs"), ({"cpus": 5}, "5 CPUs"),
                       ({"mem": 9}, "9 GB of memory")):
        with pytest.raises(DefinitionError, match="Train seed=1 asks for " + what) as info:
            backend.resolve(reqs, "Train seed=1")
        assert "4 CPUs, 2 GPUs, 8.0 GB" in str(info.value)


def _group(n: int, **reqs: object) -> SimpleNamespace:
    return SimpleNamespace(resources=common_resources(reqs, "test"), tasks=(None,) * n)


def test_a_group_says_how_many_run_at_once_from_the_tightest_limit() -> None:
    backend = LocalBackend(machine=Capacity(8, 4096, ("0", "1", "2")), login=None)
    [line] = backend.describe(_group(10, cpus=2, gpus=1, time="30:00"), validate=False).lines
    assert line.startswith("local: 10 task(s), at most 3 at once (each cpus=2 gpus=1 time "
                           "limit=0:30:00; machine: 8 CPUs, 3 GPUs, 4.0 GB")
    for reqs, most in (({"mem": "1500M"}, 2), ({"max_parallel": 1}, 1), ({}, 8)):
        assert f"at most {most} at once" in backend.describe(_group(10, **reqs),
                                                              validate=False).lines[0]
    capped = LocalBackend(workers=2, machine=Capacity(8, None, ()), login=None)
    assert "at most 2 at once" in capped.describe(_group(10), validate=False).lines[0]


def test_on_a_login_node_few_tasks_run_unless_told_and_the_warning_says_so() -> None:
    here = LocalBackend(machine=Capacity(64, None, ()), login=None)
    assert here.workers is None and here.site_warning() is None
    login = LocalBackend(machine=Capacity(64, None, ()), login="SLURM_CONF=/etc/slurm.conf")
    assert login.workers == LOGIN_NODE_WORKERS
    assert f"at most {LOGIN_NODE_WORKERS} tasks run at once" in (login.site_warning() or "")
    told = LocalBackend(workers=16, machine=Capacity(64, None, ()), login="SLURM_CONF=/x")
    assert told.workers == 16 and "at most" not in (told.site_warning() or "")
    assert "SLURM_CONF=/x" in (told.site_warning() or "")


def _job(job_id: str, **fields: object) -> JobRecord:
    return JobRecord(name=f"j{job_id}", backend="local", stage="s", tier=0,
                     tasks=[["a", "A/a"], ["b", "A/b"]], job_id=job_id, **fields)


def test_local_jobs_are_running_while_their_launcher_lives_then_their_final_state() -> None:
    me = dict(pid=os.getpid(), pid_start=process_start(os.getpid()), host=socket.gethostname())
    backend = LocalBackend(machine=Capacity(1, None, ()), login=None)
    live = _job("L1", state=RecordState.SUBMITTED, task_states={"0": "completed"}, **me)
    assert launcher_alive(live)
    states = {k: v.state for k, v in backend.query([live]).items()}
    assert states == {TaskKey("L1", 0): JobState.COMPLETED,  # not started yet: queued
                      TaskKey("L1", 1): JobState.PENDING}
    reused = _job("L2", state=RecordState.SUBMITTED, **{**me, "pid_start": -1})  # pid reused
    elsewhere = _job("L3", state=RecordState.SUBMITTED, **{**me, "host": "another-host"})
    assert not launcher_alive(reused) and not launcher_alive(elsewhere)
    assert backend.query([reused, elsewhere]) == {}
    finished = _job("L4", state=RecordState.FINISHED, **me)  # no task state: not running
    assert backend.query([finished]) == {}


def test_local_job_ids_count_up_per_project(tmp_path: Path) -> None:
    ctx = SimpleNamespace(home=tmp_path, project="p")
    paths.project_dir(tmp_path, "p").mkdir(parents=True)
    assert [_next_job_id(ctx) for _ in range(3)] == ["L1", "L2", "L3"]  # type: ignore[arg-type]
    assert _next_job_id(SimpleNamespace(home=tmp_path, project="q")) == "L1"  # type: ignore[arg-type]
