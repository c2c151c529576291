"""The local backend's own words, read back: the task log ``status`` reads while a launcher runs,
the OOM kill counts that make a local end OUT_OF_MEMORY, and the launch locks' refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from experiments.backends.local import tasklog
from experiments.backends.local.oom import OomWatch, counter_files, read_count
from experiments.errors import ExperimentsError
from experiments.launching.launch_lock import LaunchLocks, describe_holder, root_lock
from experiments.states import JobState, Outlook


def test_the_task_log_says_queued_with_why_running_and_ended() -> None:
    lines = ["ready 0", "ready 1", "start 0", "wait 1 gpus", "ready 3", "rest workers",
             "end 0 failed TIMEOUT", "garbage", "start 99", "end 1 nonsense"]
    got = tasklog.parse(lines, 4)
    assert got[0].state is JobState.FAILED and got[0].raw == "TIMEOUT"
    assert got[1].state is JobState.PENDING  # its own reason is older than the "rest" line
    assert got[1].reason == "waiting for a worker"
    assert got[2].reason == "waiting for its dependencies"  # never ready
    assert got[3].reason == "waiting for a worker" and got[3].outlook is Outlook.CLEARS
    newer = tasklog.parse(["rest cpus", "wait 0 gpus"], 1)[0]
    assert newer.reason == "waiting for GPUs" and "held by running artifacts" in newer.hint


def test_the_task_log_is_appended_by_job_and_read_back(tmp_path: Path) -> None:
    log = tasklog.TaskLog()
    log.add(str(tmp_path), "ready 0")
    log.add(str(tmp_path), "start 0")
    log.flush()
    log.add(str(tmp_path), "end 0 completed")
    log.flush()
    assert tasklog.read(str(tmp_path), 2) == {
        0: tasklog.TaskStatus(JobState.COMPLETED),
        1: tasklog.parse([], 1)[0]}
    assert tasklog.read(str(tmp_path / "none"), 1)[0].reason == "waiting for its dependencies"


def _cgroup_tree(tmp_path: Path, v1_count: int) -> tuple[str, str]:
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/jobs/me\n0::/\n")
    root = tmp_path / "sys"
    (root / "memory" / "jobs" / "me").mkdir(parents=True, exist_ok=True)
    (root / "memory" / "jobs" / "me" / "memory.oom_control").write_text(
        f"oom_kill_disable 0\nunder_oom 0\noom_kill {v1_count}\n")
    return str(proc), str(root)


def test_oom_kills_are_read_from_the_cgroup_and_need_a_sigkill(tmp_path: Path) -> None:
    proc, root = _cgroup_tree(tmp_path, 3)
    files = counter_files(proc, root)
    assert files[0] == os.path.join(root, "memory", "jobs", "me", "memory.oom_control")
    assert files[-1] == "/proc/vmstat"
    watch = OomWatch([f for f in files if f.startswith(root)])  # the fake tree only
    assert watch.count() == 3
    assert not watch.killed(3, -9)  # no kill since the start
    _cgroup_tree(tmp_path, 4)
    assert watch.killed(3, -9) and watch.killed(3, 137)
    assert not watch.killed(3, 1)  # an ordinary failure while something else was OOM-killed
    assert not watch.killed(None, -9)
    assert read_count(str(tmp_path / "missing")) is None
    assert OomWatch([str(tmp_path / "missing")]).count() is None


def test_v2_cgroups_are_read_from_memory_events(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("0::/user.slice/me\n")
    files = counter_files(str(proc), str(tmp_path))
    assert files[0] == str(tmp_path / "user.slice" / "me" / "memory.events")


def test_a_refusal_names_the_local_run_its_root_and_pid(tmp_path: Path) -> None:
    """The first launch hands the project back (a local run): another root may launch, the
    same root is refused with who holds it."""
    home = tmp_path / "home"
    first = LaunchLocks(home, "p", "/data/b", 0o022)
    first.acquire()
    with pytest.raises(ExperimentsError, match=r"a launch \(pid \d+ .*\) building into /data/b"):
        LaunchLocks(home, "p", "/data/a", 0o022).acquire()
    first.running()
    other = LaunchLocks(home, "p", "/data/a", 0o022)
    other.acquire()  # another root: goes ahead while the local run builds
    other.release()
    with pytest.raises(ExperimentsError) as refused:
        LaunchLocks(home, "p", "/data/b", 0o022).acquire()
    assert f"a local run (pid {os.getpid()} on " in str(refused.value)
    assert "building into /data/b" in str(refused.value)
    first.release()
    assert describe_holder(root_lock(home, "p", "/data/b")) == ""
    again = LaunchLocks(home, "p", "/data/b", 0o022)
    again.acquire()
    again.release()
