"""The worker: builds one artifact on the machine that runs its task.

``python -m experiments.worker <spec_dir> [<index>]`` (the index defaults to
``$SLURM_ARRAY_TASK_ID``). It skips a built artifact, refuses to run when a dependency is not
built ("dependency failed"), runs the steps in order with files written atomically, streams
command output to its own stdout (the task's log), records each attempt in ``.status.json`` and
writes the ``.done`` marker last. Standard library only, so a task starts fast.
"""

from __future__ import annotations

import base64
import enum
import fcntl
import os
import signal
import sys
import time
from datetime import datetime, timezone

from . import _atomic, _proc, paths, specs

TYPE_CHECKING = False  # typing, socket and dataclass steps stay out of every task's start
if TYPE_CHECKING:
    from typing import Any


class WorkerState(str, enum.Enum):
    """The worker's own account of an attempt, as ``.status.json`` records it."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DEPENDENCY_FAILED = "dependency_failed"
    INTERRUPTED = "interrupted"


EXIT_FAILED = 1
EXIT_DEPENDENCY_FAILED = 3
EXIT_BUSY = 75  # another worker holds the artifact's lock


class _Interrupted(BaseException):  # not Exception: step error handling must not eat it
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# Set by the signal handler; checked after every step and before the done marker, so a command
# that "succeeds" because its shell carried on after a killed child never counts as a build.
_signal: dict[str, Any] = {"signum": None, "at": 0.0, "child": None}
_GRACE_S = 10.0


def _check_signal() -> None:
    if _signal["signum"] is not None:
        raise _Interrupted(_signal["signum"])


class StepFailed(Exception):
    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def _say(message: str) -> None:
    sys.stdout.write(f"[experiments {_now()}] {message}\n")
    sys.stdout.flush()


class Build:
    """One attempt at building one artifact."""

    def __init__(self, header: dict[str, Any], task: dict[str, Any], job: str) -> None:
        self.header = header
        self.task = task
        self.job = job
        self.root: str = header["artifact_path"]
        self.dir = paths.artifact_dir(self.root, task["relpath"])
        self.record: dict[str, Any] = {
            "artifact": task["relpath"], "job": job, "host": _hostname(),
            "attempt": int(os.environ.get("SLURM_RESTART_COUNT", "0")) + 1,
        }

    def status(self, state: WorkerState, **extra: Any) -> None:
        self.record.update(state=state.value, **extra)
        try:
            _atomic.write_json(paths.status_file(self.root, self.relpath), self.record,
                               durable=False)
        except OSError as exc:  # e.g. the disk is full: the log still tells what happened
            _say(f"could not record state {state.value!r} in {paths.STATUS}: {exc}")

    @property
    def relpath(self) -> str:
        return str(self.task["relpath"])

    def _built(self, relpath: str) -> bool:
        return os.path.exists(paths.done_marker(self.root, relpath))

    def run(self) -> int:
        if self._built(self.relpath):
            _say(f"{self.relpath} is already built; nothing to do")
            return 0
        missing = [d for d in self.task["deps"] if not self._built(d)]
        os.makedirs(self.dir, exist_ok=True)
        if missing:
            _say(f"dependency failed: {missing[0]} is not built; not running")
            self.status(WorkerState.DEPENDENCY_FAILED, finished_at=_now(), missing=missing,
                        error=f"dependency {missing[0]} is not built")
            return EXIT_DEPENDENCY_FAILED
        lock_fd = os.open(paths.lock_file(self.root, self.relpath), os.O_RDWR | os.O_CREAT,
                          0o666)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            _say(f"another worker is building {self.relpath} right now; leaving it")
            os.close(lock_fd)
            return EXIT_BUSY
        try:
            return self._build()
        finally:
            os.close(lock_fd)

    def _build(self) -> int:
        if self._built(self.relpath):  # built while we waited
            return 0
        meta = {"class": self.task["class"], "params": self.task["params"],
                "artifact_id": self.task["id"], "relpath": self.relpath,
                "project": self.header["project"], "stage": self.header["stage"]}
        _atomic.write_json(paths.meta_file(self.root, self.relpath), meta, durable=False)
        self.status(WorkerState.RUNNING, started_at=_now(), finished_at=None, step=None,
                    exit_code=None, error=None)
        steps = self.task["steps"]
        for i, step in enumerate(steps):
            _check_signal()
            _say(f"step {i + 1}/{len(steps)}: {_describe(step)}")
            try:
                self._step(step)
                _check_signal()
            except StepFailed as exc:
                _check_signal()  # a step killed by our own interruption is not a failure
                _say(f"FAILED at step {i + 1}: {exc}")
                self.status(WorkerState.FAILED, finished_at=_now(), step=i + 1,
                            step_description=_describe(step), exit_code=exc.exit_code,
                            error=str(exc))
                return EXIT_FAILED
        _check_signal()
        _atomic.write_json(paths.done_marker(self.root, self.relpath),
                           {"finished_at": _now(), "job": self.job}, durable=True)
        self.status(WorkerState.DONE, finished_at=_now(), exit_code=0)
        _say(f"built {self.relpath}")
        return 0

    def _step(self, step: dict[str, Any]) -> None:
        kind = step["kind"]
        try:
            if kind == "create_file":
                data = base64.b64decode(step["content_b64"])
                _atomic.write_bytes(step["path"], data, durable=True)
            elif kind == "run_command":
                self._command(step["command"])
            elif kind in ("upload", "download"):
                from .bootstrap import ensure_site

                ensure_site()  # the worker starts without site-packages (python -S)
                from . import storage  # cloud libraries load only when a step needs them

                if kind == "upload":
                    storage.upload(step["src"], step["url"], log=sys.stdout)
                else:
                    storage.download(step["url"], step["dst"], log=sys.stdout)
            else:
                raise StepFailed(f"unknown step kind {kind!r} (spec written by a newer version?)")
        except OSError as exc:
            raise StepFailed(f"{type(exc).__name__}: {exc}") from None
        except StepFailed:
            raise
        except Exception as exc:  # storage errors and the like: record, never crash silently
            raise StepFailed(f"{type(exc).__name__}: {exc}") from None

    def _command(self, command: str) -> None:
        code_path = self.header["code_path"]
        if not os.path.isdir(code_path):
            raise StepFailed(f"code_path {code_path} does not exist on {_hostname()}")
        env = dict(os.environ)
        env.update(EXPERIMENTS_ARTIFACT_DIR=self.dir, EXPERIMENTS_ARTIFACT_PATH=self.root,
                   EXPERIMENTS_CODE_PATH=code_path, EXPERIMENTS_RELPATH=self.relpath)
        sys.stdout.flush()
        sys.stderr.flush()
        child = _proc.spawn(["/bin/bash", "-c", command], cwd=code_path, env=env)
        _signal["child"] = child
        try:
            code = _wait(child)
        finally:
            _signal["child"] = None
        _check_signal()
        if code != 0:
            raise StepFailed(f"command exited with code {code}: {command}", exit_code=code)


def _wait(child: _proc.Child) -> int:
    """Wait for a command; after an interruption, SIGKILL it if it outlives the grace period."""
    while True:
        code = child.wait(1.0)
        if code is not None:
            return code
        if _signal["signum"] is not None and time.monotonic() - _signal["at"] > _GRACE_S:
            child.signal_group(signal.SIGKILL)


def _describe(step: dict[str, Any]) -> str:
    """The step's own one-line description (an unknown kind, from a newer spec: its name)."""
    return specs.describe_step(step)


def _hostname() -> str:
    """This machine's name (what ``socket.gethostname()`` says, without importing socket)."""
    return os.uname().nodename


def _on_signal(signum: int, _frame: Any) -> None:
    """Remember the signal and pass it on to the running command's process group."""
    if _signal["signum"] is None:
        _signal.update(signum=signum, at=time.monotonic())
    child = _signal["child"]
    if child is not None:
        child.signal_group(signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    """Entry point: build the task at ``index`` of the spec directory."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write("usage: python -m experiments.worker SPEC_DIR [INDEX]\n")
        return 2
    spec_dir = args[0]
    index = int(args[1]) if len(args) > 1 else int(os.environ["SLURM_ARRAY_TASK_ID"])
    header = specs.read_header(spec_dir)
    task = specs.read_task(spec_dir, index)
    os.umask(int(header.get("umask", 0o077)))
    job = os.environ.get("EXPERIMENTS_JOB") or _slurm_job() or f"pid {os.getpid()}"
    build = Build(header, task, job)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, _on_signal)
    started = time.monotonic()
    try:
        code = build.run()
    except _Interrupted as exc:
        _say(f"interrupted by {exc}; no done marker written")
        build.status(WorkerState.INTERRUPTED, finished_at=_now(), error=f"interrupted by {exc}")
        return 128 + exc.signum
    _say(f"worker finished with exit code {code} after {time.monotonic() - started:.1f} s")
    return code


def _slurm_job() -> str | None:
    array, idx = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{idx}" if array and idx else os.environ.get("SLURM_JOB_ID")


if __name__ == "__main__":
    sys.exit(main())
