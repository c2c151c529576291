"""The worker's lock where ``flock`` fails for real (strace injects ENOSYS/ENOLCK into the worker's
``flock`` calls, see tests/support/strace.py): it falls back to a lock file, says so, and reports
"busy" only while a live builder holds the artifact."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.worker import lock as locking
from tests.support.strace import no_flock
from tests.support.worker import REL, WORKER_TIMEOUT_S, Spec
from tests.support.worker import builder as _builder
from tests.support.worker import kill as _kill
from tests.support.worker import status_of as _status
from tests.support.worker import wait_for as _wait_for
from tests.support.worker import worker_env as _env
from tests.support.worker import write_spec as _write

LOCK_FILE = ".build-lock"


def _argv(spec: Spec, errno_name: str = "ENOSYS") -> list[str]:
    return [*no_flock(errno_name), sys.executable, "-m", "experiments.worker", spec.dir, "0"]


def _run(spec: Spec, errno_name: str = "ENOSYS", **env: str
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_argv(spec, errno_name), capture_output=True, text=True,
                          timeout=WORKER_TIMEOUT_S, env=_env(**env))


def _start(spec: Spec, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(_argv(spec), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(**env))


def _dead_pid() -> tuple[int, int | None]:
    """A pid (and start time) of a process that has ended."""
    proc = subprocess.Popen(["sleep", "30"])
    start = locking._proc.process_start(proc.pid)
    proc.kill()
    proc.wait()
    return proc.pid, start


def _plant(spec: Spec, owner: dict[str, object] | bytes) -> Path:
    art = spec.art()
    art.mkdir(parents=True, exist_ok=True)
    path = art / LOCK_FILE
    path.write_bytes(owner if isinstance(owner, bytes) else json.dumps(owner).encode())
    return path


@pytest.mark.parametrize("errno_name", ["ENOSYS", "ENOLCK", "EOPNOTSUPP"])
def test_without_flock_a_task_builds_with_a_lock_file_and_says_so(tmp_path: Path,
                                                                   errno_name: str) -> None:
    b = _builder(tmp_path)
    b.run_command('test -e "$EXPERIMENTS_ARTIFACT_DIR/.build-lock" && echo held-during-build')
    spec = _write(tmp_path, [b])
    res = _run(spec, errno_name)
    assert res.returncode == 0, res.stdout + res.stderr
    shown = errno.errorcode[getattr(errno, errno_name)]  # EOPNOTSUPP is ENOTSUP on Linux
    assert (f"locking {REL} with lock file .build-lock (flock is not supported here: "
            f"{shown})") in res.stdout
    assert "held-during-build" in res.stdout
    assert (spec.art() / ".done").exists() and not (spec.art() / LOCK_FILE).exists()


def test_with_flock_the_log_says_flock(tmp_path: Path) -> None:
    spec = _write(tmp_path, [_builder(tmp_path)])
    res = subprocess.run([sys.executable, "-m", "experiments.worker", spec.dir, "0"],
                         capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, env=_env())
    assert res.returncode == 0 and f"locking {REL} with flock" in res.stdout, res.stdout
    assert not (spec.art() / LOCK_FILE).exists()


def test_two_builders_without_flock_one_builds_the_other_is_busy(tmp_path: Path) -> None:
    b = _builder(tmp_path)
    b.run_command('touch "$EXPERIMENTS_ARTIFACT_DIR/started"; sleep 30')
    spec = _write(tmp_path, [b])
    first = _start(spec, EXPERIMENTS_JOB="first")
    try:
        _wait_for(spec.art() / "started")
        owner = json.loads((spec.art() / LOCK_FILE).read_text())
        assert owner["job"] == "first" and owner["host"] == os.uname().nodename
        second = _run(spec, EXPERIMENTS_BUSY_WAIT_S="0", EXPERIMENTS_JOB="second")
        assert second.returncode == 75, second.stdout
        assert f"another worker is building {REL} right now (first (pid {owner['pid']}" \
            in second.stdout
        assert _status(spec)["state"] == "running" and _status(spec)["job"] == "first"
        os.kill(owner["pid"], signal.SIGTERM)  # the worker, not strace (which would detach)
        first.communicate(timeout=WORKER_TIMEOUT_S)
    finally:
        _kill(first)
    assert first.returncode == 128 + signal.SIGTERM
    assert not (spec.art() / ".done").exists() and not (spec.art() / LOCK_FILE).exists()


def test_a_builder_without_flock_waits_for_the_other_and_reports_it(tmp_path: Path) -> None:
    b = _builder(tmp_path)
    b.run_command('touch "$EXPERIMENTS_ARTIFACT_DIR/started"; sleep 2; echo built >> '
                  '"$EXPERIMENTS_ARTIFACT_DIR/runs"')
    spec = _write(tmp_path, [b])
    first = _start(spec, EXPERIMENTS_JOB="first")
    try:
        _wait_for(spec.art() / "started")
        second = _run(spec, EXPERIMENTS_JOB="second")
        first.communicate(timeout=WORKER_TIMEOUT_S)
    finally:
        _kill(first)
    assert second.returncode == 0, second.stdout
    assert "waiting up to" in second.stdout and "was built by first" in second.stdout
    assert (spec.art() / "runs").read_text() == "built\n"  # built once
    assert not (spec.art() / LOCK_FILE).exists()


def test_a_lock_file_of_a_dead_worker_on_this_host_is_taken_over(tmp_path: Path) -> None:
    b = _builder(tmp_path)
    b.run_command("echo ran")
    spec = _write(tmp_path, [b])
    pid, start = _dead_pid()
    _plant(spec, {"job": "12_3", "host": os.uname().nodename, "pid": pid, "pid_start": start,
                  "slurm_job_id": "12", "token": "old"})
    res = _run(spec)
    assert res.returncode == 0, res.stdout
    assert "taking over the stale lock file" in res.stdout and "is gone" in res.stdout
    assert (spec.art() / ".done").exists() and not (spec.art() / LOCK_FILE).exists()
    assert [p.name for p in spec.art().iterdir() if "stale" in p.name] == []


def test_a_lock_file_of_an_earlier_attempt_of_the_same_job_is_taken_over(tmp_path: Path
                                                                          ) -> None:
    spec = _write(tmp_path, [_builder(tmp_path)])
    _plant(spec, {"job": "77_0", "host": "another-node", "pid": 1, "slurm_job_id": "77",
                  "token": "old"})
    res = _run(spec, SLURM_JOB_ID="77")
    assert res.returncode == 0, res.stdout
    assert "earlier attempt of this job (77)" in res.stdout


def test_a_lock_file_nobody_can_check_counts_as_live(tmp_path: Path) -> None:
    """Another host, no Slurm job: the holder cannot be checked from here, so the artifact is
    busy, and the message names the holder and the file to remove."""
    spec = _write(tmp_path, [_builder(tmp_path)])
    path = _plant(spec, {"job": "pid 99", "host": "another-node", "pid": 99, "token": "x"})
    res = _run(spec, EXPERIMENTS_BUSY_WAIT_S="0")
    assert res.returncode == 75, res.stdout
    assert "pid 99 (pid 99 on another-node)" in res.stdout
    assert f"remove {path}" in res.stdout
    assert path.exists() and not (spec.art() / ".done").exists()


def test_an_empty_lock_file_is_being_written_until_it_is_old(tmp_path: Path) -> None:
    spec = _write(tmp_path, [_builder(tmp_path)])
    path = _plant(spec, b"")
    young = _run(spec, EXPERIMENTS_BUSY_WAIT_S="0")
    assert young.returncode == 75, young.stdout
    old = path.stat().st_mtime - locking.WRITING_S - 5
    os.utime(path, (old, old))
    res = _run(spec)
    assert res.returncode == 0, res.stdout
    assert "empty or unreadable" in res.stdout


def test_a_lock_file_replaced_after_it_was_judged_stale_is_put_back(tmp_path: Path) -> None:
    """Two workers take over one stale file: the slower one must not remove the new holder's."""
    path = tmp_path / LOCK_FILE
    path.write_bytes(b'{"token": "new holder"}')
    locking._take_aside(str(path), b'{"token": "stale"}')
    assert path.read_bytes() == b'{"token": "new holder"}'
    locking._take_aside(str(path), b'{"token": "new holder"}')
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_an_unexpected_flock_error_fails_loudly(tmp_path: Path) -> None:
    spec = _write(tmp_path, [_builder(tmp_path)])
    res = _run(spec, "EIO")
    assert res.returncode == 1, res.stdout
    assert "cannot lock" in res.stdout and "Input/output error" in res.stdout
    assert _status(spec)["state"] == "failed"
    assert not (spec.art() / ".done").exists()


def test_a_lock_that_cannot_be_opened_fails_loudly_not_busy(tmp_path: Path) -> None:
    """``.lock`` is a directory here (EISDIR): the task fails naming it, never "busy"."""
    spec = _write(tmp_path, [_builder(tmp_path)])
    (spec.art() / ".lock").mkdir(parents=True)
    res = subprocess.run([sys.executable, "-m", "experiments.worker", spec.dir, "0"],
                         capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, env=_env())
    assert res.returncode == 1, res.stdout
    assert f"cannot open {spec.art() / '.lock'}: Is a directory" in res.stdout
    assert "another worker is building" not in res.stdout and not (spec.art() / ".done").exists()


def _in_own_pid_namespace(spec: Spec) -> list[str]:
    """A worker in a pid namespace (and /proc) of its own, as in a container: pid 2 there."""
    return ["unshare", "--pid", "--fork", "--mount-proc", *_argv(spec)]


def test_builders_in_separate_pid_namespaces_build_once(tmp_path: Path) -> None:
    """Issue 23, item 8: both workers are pid 2 in their own namespace; the second must not
    judge the first by looking up pid 2 in its own (where it is itself): busy, not taken over."""
    b = _builder(tmp_path)
    b.run_command('echo run >> "$EXPERIMENTS_ARTIFACT_DIR/../runs"; '
                  'touch "$EXPERIMENTS_ARTIFACT_DIR/started"; '
                  'while [ ! -e "$EXPERIMENTS_ARTIFACT_DIR/go" ]; do sleep 0.1; done')
    spec = _write(tmp_path, [b])
    runs = spec.art().parent / "runs"
    first = subprocess.Popen(_in_own_pid_namespace(spec), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_env(EXPERIMENTS_JOB="first"))
    second = None
    try:
        _wait_for(spec.art() / "started")
        owner = json.loads((spec.art() / LOCK_FILE).read_text())
        assert owner["pid"] < 10, owner  # its pid inside its own namespace
        second = subprocess.Popen(_in_own_pid_namespace(spec), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env=_env(EXPERIMENTS_JOB="second", EXPERIMENTS_BUSY_WAIT_S="0"))
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        while second.poll() is None and runs.read_text().count("run") < 2:
            assert time.monotonic() < deadline, "the second worker neither ended nor built"
            time.sleep(0.05)
        assert runs.read_text() == "run\n", "built twice: the second took the lock over"
        out = second.communicate(timeout=WORKER_TIMEOUT_S)[0]
        assert second.returncode == 75 and "taking over" not in out, out
        assert f"another worker is building {REL} right now (first (pid {owner['pid']}" in out
    finally:
        (spec.art() / "go").touch()
        first.communicate(timeout=WORKER_TIMEOUT_S)
        if second is not None:
            _kill(second)
    assert first.returncode == 0, first.stdout
    assert (spec.art() / ".done").exists()


def test_a_dead_holder_in_this_pid_namespace_is_still_taken_over(tmp_path: Path) -> None:
    spec = _write(tmp_path, [_builder(tmp_path)])
    pid, start = _dead_pid()
    _plant(spec, {"job": "pid x", "host": os.uname().nodename,
                  "pid_ns": os.stat("/proc/self/ns/pid").st_ino,
                  "pid": pid, "pid_start": start, "token": "old"})
    res = _run(spec)
    assert res.returncode == 0 and "is gone" in res.stdout, res.stdout
