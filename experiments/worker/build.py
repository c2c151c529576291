"""The worker: builds one artifact on the machine that runs its task.

``python -m experiments.worker <spec_dir> [<index>]`` (the index defaults to
``$SLURM_ARRAY_TASK_ID``); ``python -m experiments.worker --serve`` builds one task per request
read from stdin (the local backend's pool: one interpreter for many artifacts, see ``serve``).
It skips a built artifact, refuses to run when a dependency is not
built ("dependency failed"), runs the steps in order with files written atomically, streams
command output to its own stdout (the task's log), records each attempt in ``.status.json`` and
writes the ``.done`` marker last. Standard library only, so a task starts fast.
"""

from __future__ import annotations

import base64
import os
import signal
import sys
import time

from .. import _atomic, _proc, paths
from ..errors import SpecError
from . import code_guard, folders, provenance, slurm, specs, task_setup, trust
from . import lock as locking
from .common import (
    EARLY_FAILURE,
    EXIT_BUSY,
    EXIT_DEPENDENCY_FAILED,
    EXIT_FAILED,
    WorkerState,
    cancel_dependents,
    pack_exit_code,
    requeue_task,
    requeued_exit_code,
    restart_count,
    scheduler_exit_code,
    section_line,
    unrecorded,
)
from .common import hostname as _hostname
from .common import now as _now
from .common import say as _say

TYPE_CHECKING = False  # typing, socket and dataclass steps stay out of every task's start
if TYPE_CHECKING:
    from typing import Any


class _Interrupted(BaseException):  # not Exception: step error handling must not eat it
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# Set by the signal handler; checked after every step and before the done marker, so a command
# that "succeeds" because its shell carried on after a killed child never counts as a build.
_signal: dict[str, Any] = {"signum": None, "at": 0.0, "child": None, "announce": None,
                           "checkpoint": False}
_GRACE_S = 10.0


def _check_signal() -> None:
    if _signal["signum"] is not None:
        raise _Interrupted(_signal["signum"])


class StepFailed(Exception):
    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Build:
    """One attempt at building one artifact."""

    def __init__(self, header: specs.SpecHeader, task: dict[str, Any], job: str) -> None:
        self.header = header
        self.task = task
        self.job = job
        self.root = header.artifact_path
        self.dir = paths.artifact_dir(self.root, task["relpath"])
        self.record: dict[str, Any] = {
            "artifact": task["relpath"], "job": job, "host": _hostname(),
            "attempt": restart_count() + 1,
        }
        self.trust = folders.Trust(header.trusted_uids, header.trusted_gids)
        self.record["user"] = trust.account(os.geteuid())  # who built it, for lab-mates to see
        gpus = os.environ.get("EXPERIMENTS_GPUS")
        if gpus is not None:  # the local backend's placement: these GPU indices, no others
            self.record["gpus"] = [g for g in gpus.split(",") if g]

    def status(self, state: WorkerState, **extra: Any) -> None:
        self.record.update(state=state.value, **extra)
        try:
            _atomic.write_json(paths.status_file(self.root, self.relpath), self.record,
                               durable=False)
        except OSError as exc:  # e.g. the disk is full: the log still tells what happened
            _say(f"could not record state {state.value!r} in {paths.STATUS}: {exc}")
            if state in (WorkerState.FAILED, WorkerState.DEPENDENCY_FAILED):
                unrecorded(str(self.record.get("error") or state.value), self.dir, exc)

    @property
    def relpath(self) -> str:
        return str(self.task["relpath"])

    def _built(self, relpath: str) -> bool:
        """A done marker from a trusted account (ours, or one the spec's config trusts)."""
        return trust.marker_built(self.root, relpath, self.header.trusted_uids,
                                  self.header.trusted_gids)

    def run(self) -> int:
        outside = self._outside_root()
        if outside:  # nothing may be read or written there, not even a status file
            _say(f"{EARLY_FAILURE} {outside}")
            return EXIT_FAILED
        try:  # before anything is read from or written to the folder
            folders.prepare(self.root, self.relpath, self.trust)
        except folders.Refused as exc:  # nothing is written into a folder we refuse
            _say(f"FAILED: {exc}")
            return EXIT_FAILED
        if self._built(self.relpath):
            _say(f"{self.relpath} is already built; nothing to do")
            return 0
        missing = [(d, why) for d in self.task["deps"] if (why := self._dep_problem(d))]
        if missing:
            dep, why = missing[0]
            _say(f"dependency failed: {dep} {why}; not running")
            self.status(WorkerState.DEPENDENCY_FAILED, finished_at=_now(),
                        missing=[d for d, _ in missing], error=f"dependency {dep} {why}")
            return EXIT_DEPENDENCY_FAILED
        lock = locking.ArtifactLock(paths.lock_file(self.root, self.relpath),
                                    paths.lock_file_fallback(self.root, self.relpath),
                                    locking.me(self.job), _say)
        try:
            got = lock.acquire()
            _say(f"locking {self.relpath} with {lock.method}")
            if not got:
                return self._wait_for_other(lock)
        except locking.LockError as exc:
            _say(f"FAILED: {exc}; not building (another worker could be building it too)")
            self.status(WorkerState.FAILED, finished_at=_now(), error=str(exc))
            return EXIT_FAILED
        try:
            return self._build()
        finally:
            lock.release()

    def _dep_problem(self, relpath: str) -> str | None:
        """Why a dependency cannot be built on: not built, or not as its build left it."""
        if not self._built(relpath):
            return "is not built"
        problem = folders.built_problem(self.root, relpath, self.trust)
        return None if problem is None else (
            f"is not as its build left it: {problem}; rebuild it (invalidate it, then launch)")

    def _wait_for_other(self, lock: locking.ArtifactLock) -> int:
        """Another live worker holds the artifact's lock: wait for its build (bounded by our own
        time limit), then say what really happened instead of failing our dependents for nothing."""
        other = self._holder(lock)
        budget = locking.wait_budget_s()
        _say(f"another worker is building {self.relpath} right now ({other}); waiting up to "
             f"{budget:.0f} s for it")
        deadline = time.monotonic() + budget
        try:
            while not lock.acquire():
                if _signal["signum"] is not None:
                    _say(f"interrupted by {signal.Signals(_signal['signum']).name} while "
                         f"waiting for {other}")
                    return 128 + int(_signal["signum"])
                if time.monotonic() >= deadline:
                    _say(f"gave up waiting for {other} to build {self.relpath}; leaving it"
                         + (f" (if no worker is building it, remove {lock.file_path})"
                            if lock.holder else ""))
                    return EXIT_BUSY
                time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
            return self._after_other(other)
        finally:
            lock.release()

    def _holder(self, lock: locking.ArtifactLock) -> str:
        """Who holds the lock: the lock file's owner, else the job the status file names."""
        if lock.holder:
            return locking.describe(lock.holder)
        return str(provenance.read_json(paths.status_file(self.root, self.relpath)).get("job")
                   or "another job")

    def _after_other(self, other: str) -> int:
        """We hold the lock the other worker released: report its outcome, or build."""
        if self._built(self.relpath):
            done = provenance.read_json(paths.done_marker(self.root, self.relpath))
            by = done.get("job") or other
            _say(f"{self.relpath} was built by {by} while we waited; nothing to do")
            return 0
        record = provenance.read_json(paths.status_file(self.root, self.relpath))
        if record.get("state") == WorkerState.FAILED.value:
            _say(f"the build of {self.relpath} by {record.get('job') or other} failed "
                 f"({record.get('error')}); not building it again here")
            return EXIT_FAILED
        _say(f"{other} ended without building {self.relpath}; building it here")
        return self._build()

    def _build(self) -> int:
        if self._built(self.relpath):  # built while we waited
            return 0
        build_id = provenance.new_build_id()
        meta = {"class": self.task["class"], "params": self.task["params"],
                "artifact_id": self.task["id"], "relpath": self.relpath,
                "project": self.header.project, "stage": self.header.stage,
                "provenance": provenance.collect(
                    self.header, self.root, self.task["deps"], build=build_id, job=self.job,
                    attempt=self.record["attempt"], started_at=_now())}
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
                if _signal["checkpoint"] and self._requeue(i + 1, exc):
                    return requeued_exit_code()
                _say(f"FAILED at step {i + 1}: {exc}")
                self.status(WorkerState.FAILED, finished_at=_now(), step=i + 1,
                            step_description=_describe(step), exit_code=exc.exit_code,
                            error=str(exc))
                return EXIT_FAILED
        _check_signal()
        _atomic.write_json(paths.done_marker(self.root, self.relpath),
                           {"finished_at": _now(), "job": self.job, "build_id": build_id,
                            "user": self.record["user"], "uid": os.geteuid()}, durable=True)
        self.status(WorkerState.DONE, finished_at=_now(), exit_code=0)
        _say(f"built {self.relpath}")
        return 0

    def _requeue(self, step: int, exc: StepFailed) -> bool:
        """After the checkpoint signal, ask Slurm to run this task again (at most
        ``max_requeues`` times); False when it may not, so the attempt counts as failed."""
        if not requeue_task(self.header.checkpoint, str(exc)):
            return False
        self.status(WorkerState.REQUEUED, finished_at=_now(), step=step, error=None,
                    exit_code=exc.exit_code)
        return True

    def _step(self, step: dict[str, Any]) -> None:
        kind = step["kind"]
        for key in ("path", "dst"):  # every path a step writes to
            if kind in ("create_file", "download") and key in step:
                self._check_inside(str(step[key]))
        try:
            if kind == "create_file":
                data = base64.b64decode(step["content_b64"])
                _atomic.write_bytes(step["path"], data, durable=True)
            elif kind == "run_command":
                self._command(step["command"])
            elif kind in ("upload", "download"):
                from .bootstrap import ensure_site

                ensure_site()  # the worker starts without site-packages (python -S)
                from .. import storage  # cloud libraries load only when a step needs them

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

    def _outside_root(self) -> str:
        """Why the artifact's folder is not inside the artifact root (symlinks resolved), or
        "": a spec edited to ``../../x`` must not make the worker write markers elsewhere."""
        root = os.path.realpath(self.root)
        folder = os.path.realpath(self.dir)
        if folder.startswith(root.rstrip(os.sep) + os.sep):
            return ""
        return (f"refusing to build {self.relpath!r}: its folder {folder} lies outside the "
                f"artifact root {root} (the spec in {self.header.job_name} was "
                "edited, or a symlink leads out); launch again to write a fresh spec")

    def _check_inside(self, path: str) -> None:
        """Refuse a write outside the artifact's folder (symlinks resolved), whatever the spec
        says: the builder checks this at launch, but the spec on disk could have been edited."""
        folder = os.path.realpath(self.dir)
        target = os.path.realpath(os.path.join(folder, path))
        if target != folder and not target.startswith(folder + os.sep):
            raise StepFailed(f"refusing to write {path}: it is outside the artifact's folder "
                             f"{folder}")

    def _command(self, command: str) -> None:
        code_path = self.header.code_path
        if not os.path.isdir(code_path):
            raise StepFailed(f"code_path {code_path} does not exist on {_hostname()}")
        setup = self.header.setup  # set when the backend has no batch script
        script = "\n".join([*task_setup.prelude(setup), command])
        sys.stdout.flush()
        sys.stderr.flush()
        snapshot = self.header.snapshot is not None
        before = code_guard.listing(code_path) \
            if snapshot and code_guard.needed(code_path) else None
        child = _proc.spawn(["/bin/bash", "-c", script], cwd=code_path,
                            env=self._command_env(code_path))
        _signal["child"] = child
        if _signal["announce"] is not None:  # serving: the launcher can stop it if we die
            _signal["announce"](child.pid)
        checkpoint = self.header.checkpoint
        if _signal["checkpoint"] and checkpoint:  # the limit is near: checkpoint at once
            child.signal_group(getattr(signal, "SIG" + checkpoint.signal))
        try:
            code = _wait(child)
        finally:
            _signal["child"] = None
        if before is not None:
            self._guard(code_path, before, code)
        _check_signal()
        if code != 0:
            if snapshot:
                _say(f"(commands run in the read-only code snapshot {code_path}: a write to a "
                     "relative path fails there; write under $EXPERIMENTS_ARTIFACT_DIR)")
            raise StepFailed(f"command exited with code {code}: {command}", exit_code=code)

    def _command_env(self, code_path: str) -> dict[str, str]:
        """The environment of a command: ours, plus where its artifact, code and checkpoints
        are; Python's bytecode goes beside a snapshot, not into it (it is read-only)."""
        env = dict(os.environ)
        checkpoints = paths.checkpoint_dir(self.root, self.relpath)
        try:  # kept across attempts: a symlink or a stranger's folder here is refused
            folders.prepare(self.root, f"{self.relpath}/{paths.CHECKPOINT}", self.trust)
        except folders.Refused as exc:
            raise StepFailed(str(exc)) from None
        if self.header.snapshot is not None and "PYTHONPYCACHEPREFIX" not in env:
            env["PYTHONPYCACHEPREFIX"] = os.path.join(os.path.dirname(code_path), "pycache")
        env.update(EXPERIMENTS_ARTIFACT_DIR=self.dir, EXPERIMENTS_ARTIFACT_PATH=self.root,
                   EXPERIMENTS_CODE_PATH=code_path, EXPERIMENTS_RELPATH=self.relpath,
                   EXPERIMENTS_CHECKPOINT_DIR=checkpoints,
                   EXPERIMENTS_ATTEMPT=str(self.record["attempt"]))
        return env

    def _guard(self, code_path: str, before: dict[str, Any], code: int) -> None:
        """Where the snapshot's modes do not stop writes (root): fail the step when the
        command wrote into it, after removing what it added (see :mod:`.code_guard`)."""
        added, changed, folders = code_guard.changes(before, code_guard.listing(code_path))
        if added or changed or folders:
            code_guard.undo_added(code_path, added)
            raise StepFailed(code_guard.message(code_path, self.dir, added, changed, folders),
                             exit_code=code or None)


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


def _on_signal(signum: int, _frame: Any) -> None:
    """Remember the signal and pass it on to the running command's process group."""
    if _signal["signum"] is None:
        _signal.update(signum=signum, at=time.monotonic())
    child = _signal["child"]
    if child is not None:
        child.signal_group(signal.SIGTERM)


def _on_checkpoint(signum: int, _frame: Any) -> None:
    """The checkpoint signal (before the time limit): remember it and pass the same signal on
    to the running command, which saves its state and exits."""
    _signal["checkpoint"] = True
    child = _signal["child"]
    if child is not None:
        child.signal_group(signum)


def install_signal_handlers() -> None:
    """SIGTERM, SIGINT and SIGUSR1 stop the running command and are recorded."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, _on_signal)


def main(argv: list[str] | None = None) -> int:
    """Entry point: build the task at ``index`` of the spec directory (``--serve`` is
    :mod:`.pool_mode`'s, chosen by ``python -m experiments.worker``)."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write("usage: python -m experiments.worker SPEC_DIR [INDEX] | --serve\n")
        return 2
    install_signal_handlers()
    index = int(args[1]) if len(args) > 1 else slurm.array_index()
    return build_task(args[0], index)


def build_task(spec_dir: str, index: int) -> int:
    """Build the task at array ``index`` (one artifact, or a pack of them) with the current
    environment; returns the worker's exit code."""
    try:
        header = specs.read_header(spec_dir)
    except SpecError as exc:  # damaged, or from a newer version: say so in the task's log
        _say(f"FAILED: {exc}")
        return EXIT_FAILED
    os.umask(header.umask)
    job = os.environ.get("EXPERIMENTS_JOB") or slurm.task_key() or f"pid {os.getpid()}"
    if header.checkpoint:
        signal.signal(getattr(signal, "SIG" + header.checkpoint.signal), _on_checkpoint)
    started = time.monotonic()
    if header.packs:
        code = _build_pack(spec_dir, header, index, job)
    else:
        task = specs.read_task(spec_dir, header.position(index))
        code = _build_one(spec_dir, index, header, task, job)
    if code >= 128:  # interrupted: the scheduler's word for the end is the truth
        return code
    _say(f"worker finished with exit code {code} after {time.monotonic() - started:.1f} s")
    return scheduler_exit_code(code)


def _build_one(spec_dir: str, index: int, header: specs.SpecHeader, task: dict[str, Any],
               job: str) -> int:
    """Build one artifact; an interruption is recorded (and, unpacked, ends the tasks that
    wait on this one with ``aftercorr``)."""
    build = Build(header, task, job)
    try:
        return build.run()
    except _Interrupted as exc:
        _say(f"interrupted by {exc}; no done marker written")
        build.status(WorkerState.INTERRUPTED, finished_at=_now(), error=f"interrupted by {exc}")
        if not header.packs:  # nothing waits task by task on a pack (plan/lanes.py)
            cancel_dependents(spec_dir, index, build.relpath, f"interrupted by {exc}")
        return 128 + exc.signum


def _build_pack(spec_dir: str, header: specs.SpecHeader, index: int, job: str) -> int:
    """Build the artifacts of pack ``index`` one after the other, each on its own: a failure
    does not stop the rest, a built one is skipped (a requeued pack resumes), and a signal
    stops the pack before its next artifact (after the checkpoint signal, requeued)."""
    where = header.positions(index)
    codes: list[int] = []
    for k, pos in enumerate(where, 1):
        if _signal["signum"] is not None or _signal["checkpoint"]:
            return _pack_cut(header, len(where) - k + 1)
        task = specs.read_task(spec_dir, pos)
        _say(section_line(k, len(where), task["relpath"]))
        codes.append(_build_one(spec_dir, index, header, task, job))
        if codes[-1] >= 128:
            _say(f"{len(where) - k} later artifact(s) of this task not started")
            return codes[-1]
    return pack_exit_code(codes)


def _pack_cut(header: specs.SpecHeader, left: int) -> int:
    """A signal arrived between two artifacts of a pack: stop before the next one."""
    if _signal["signum"] is not None:
        _say(f"interrupted by {signal.Signals(_signal['signum']).name}; {left} artifact(s) of "
             "this task not started")
        return 128 + int(_signal["signum"])
    if requeue_task(header.checkpoint, f"{left} artifact(s) of this task not started"):
        return requeued_exit_code()
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
