"""The worker's vocabulary, and what it owes the tasks around it (standard library only).

States and exit codes as ``.status.json`` and the scheduler see them; the worker's log lines
(``[experiments <time>] …``), including the line that opens each artifact's section of a
pack's log (:func:`section_line`, read back by ``cat`` through :func:`section_of`); and what a
worker does for tasks that wait on it: the exit code that releases ``aftercorr`` dependents,
and cancelling them, recorded as dependency failed, when it dies.
"""

from __future__ import annotations

import enum
import json
import os
import re
import sys
from datetime import datetime, timezone

from .. import _atomic, _proc, paths
from . import slurm

TYPE_CHECKING = False  # typing stays out of every task's start
if TYPE_CHECKING:
    from .specs import Checkpoint


class WorkerState(str, enum.Enum):
    """The worker's own account of an attempt, as ``.status.json`` records it."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DEPENDENCY_FAILED = "dependency_failed"
    INTERRUPTED = "interrupted"
    REQUEUED = "requeued"  # checkpointed before the time limit; Slurm runs it again


EXIT_FAILED = 1
EXIT_DEPENDENCY_FAILED = 3
EXIT_BUSY = 75  # another worker held the artifact's lock for longer than we could wait
EXIT_REQUEUED = 79  # local backend: checkpointed after the signal; run this task again
# Set by the local backend in each task: how often it was restarted after a checkpoint (what
# SLURM_RESTART_COUNT is on Slurm); when set, a requeue is the local backend's, not scontrol's.
LOCAL_RESTARTS_ENV = "EXPERIMENTS_LOCAL_RESTARTS"
# Set (to "1") by a backend whose dependents wait with ``aftercorr``: an ordinary failure (and a
# dependency failure) then ends with exit 0, so the counterpart task is released and ends as
# "dependency failed" at once instead of pending forever. ``.status.json`` keeps the truth.
EXIT_ZERO_ENV = "EXPERIMENTS_EXIT_ZERO_ON_FAILURE"


# The line a task's log ends with when it failed before any build could start (the batch
# script found no python, the spec names a folder outside the artifact root): no status file
# can say so, so `status` reads the reason from the log (tracking/logfiles.py: early_failure).
EARLY_FAILURE = "experiments: task failed before building:"
# The line a task's log gets when it failed and could not record that in .status.json (its
# folder is another account's, the disk is full): `status` reads the reason from the log.
UNRECORDED_FAILURE = "experiments: task failed and could not record it:"
_unrecorded: list[str] = []  # why a failure of this process could not be recorded


def now() -> str:
    """The current local time, ISO 8601 with its offset (to the second)."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def say(message: str) -> None:
    """One line of the worker's own in the task's log."""
    sys.stdout.write(f"[experiments {now()}] {message}\n")
    sys.stdout.flush()


def hostname() -> str:
    """This machine's name (what ``socket.gethostname()`` says, without importing socket)."""
    return os.uname().nodename


# -- packs: one log, one section per artifact ---------------------------------------------------
_SECTION = "artifact {k}/{n} of this task: {relpath}"
_SECTION_RE = re.compile(rb"\[experiments [^\]]*\] artifact \d+/\d+ of this task: (.*)")
# The batch script's banner: a new attempt of the task (a requeue) starts here.
ATTEMPT_PREFIX = b"experiments: task "


def section_line(k: int, n: int, relpath: str) -> str:
    """What the worker says before building the ``k``-th of the ``n`` artifacts of a pack."""
    return _SECTION.format(k=k, n=n, relpath=relpath)


def section_of(line: bytes) -> str | None:
    """The relpath whose section a log line opens; "" for an attempt's banner (which ends any
    section); None for any other line."""
    if line.startswith(ATTEMPT_PREFIX):
        return ""
    match = _SECTION_RE.match(line.rstrip(b"\r\n"))
    return match.group(1).decode("utf-8", "replace") if match else None


def pack_exit_code(codes: list[int]) -> int:
    """A pack's exit code from its artifacts': a failure first, then any other problem."""
    if EXIT_FAILED in codes:
        return EXIT_FAILED
    return next((c for c in codes if c != 0), 0)


# -- what a worker owes the scheduler and the tasks waiting on it -----------------------------
def unrecorded(error: str, folder: str, exc: OSError) -> None:
    """A failure could not be written to ``.status.json``: say so where ``status`` reads it
    (this log), and remember it so the exit line does not claim it was recorded."""
    why = (f"{error} (and {paths.STATUS} in {folder} cannot be written: {exc.strerror or exc}; "
           "is the folder another account's? build into an artifact root of your own, or ask "
           "its owner)")
    _unrecorded.append(why)
    say(f"{UNRECORDED_FAILURE} {why}")


def scheduler_exit_code(code: int) -> int:
    """The exit code the scheduler sees: 0 for an ordinary (or dependency) failure when the
    backend asked for it (``EXIT_ZERO_ENV``), so tasks waiting with ``aftercorr`` are released."""
    if os.environ.get(EXIT_ZERO_ENV) == "1" and code in (EXIT_FAILED, EXIT_DEPENDENCY_FAILED):
        where = (f"could not be recorded in {paths.STATUS} (see above): this log says why"
                 if _unrecorded else f"is recorded in {paths.STATUS}")
        say(f"exiting 0 instead of {code} so that dependents are released; the failure "
            f"{where}")
        return 0
    return code


def record_dependency_failed(root: str, relpath: str, job: str, error: str) -> None:
    """Record that an artifact's task was cancelled because a dependency was not built."""
    from .folders import Refused, Trust, prepare

    if os.path.exists(paths.done_marker(root, relpath)):
        return
    try:
        prepare(root, relpath, Trust())
    except Refused as exc:  # another account's folder: nothing is written there
        say(f"not recording the dependency failure of {relpath}: {exc}")
        return
    _atomic.write_json(paths.status_file(root, relpath),
                       {"artifact": relpath, "job": job, "host": hostname(),
                        "state": WorkerState.DEPENDENCY_FAILED.value, "finished_at": now(),
                        "error": error}, durable=False)


def cancel_dependents(spec_dir: str, index: int, relpath: str, why: str,
                      depth: int = 0) -> None:
    """Cancel the tasks waiting on task ``index`` with ``aftercorr`` (and theirs, in turn),
    recording each as dependency failed; they would otherwise pend forever. Best effort."""
    folder = os.path.join(spec_dir, paths.DEPENDENTS)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    for name in names:
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                info = json.load(fh)
            dependent = info["tasks"].get(str(index))
            if dependent is None or os.path.exists(
                    os.path.join(info["spec_dir"], paths.CANCEL_REQUESTED)):
                continue  # not waiting on this task, or being cancelled by the user anyway
            key = f"{info['job']}_{index}"
            slurm.cancel_task(key)
            record_dependency_failed(info["artifact_path"], dependent, key,
                                     f"dependency {relpath} was not built ({why})")
            say(f"cancelled {key} ({dependent}): it waited for this task")
            if depth < 50:
                cancel_dependents(info["spec_dir"], index, dependent, why, depth + 1)
        except (OSError, ValueError, KeyError, TypeError, _proc.ProcTimeout) as exc:
            say(f"could not cancel the dependents listed in {name}: {exc}")


def restart_count() -> int:
    """How often this task was requeued before this attempt: the local backend's count when it
    runs the task, else Slurm's ``SLURM_RESTART_COUNT``."""
    value = os.environ.get(LOCAL_RESTARTS_ENV)
    return int(value) if value and value.isdigit() else slurm.restart_count()


def requeued_exit_code() -> int:
    """The exit code of a requeued task: 0 on Slurm (it runs the task again by itself), the
    local backend's :data:`EXIT_REQUEUED` on this machine."""
    return EXIT_REQUEUED if LOCAL_RESTARTS_ENV in os.environ else 0


def requeue_task(conf: Checkpoint | None, why: str) -> bool:
    """After the checkpoint signal, ask Slurm (or the local backend) to run this task again (at
    most ``max_requeues`` times, and only when the spec's checkpoint allows it); says what
    happened, True when requeued."""
    restarts, job = restart_count(), slurm.job_id()
    local = LOCAL_RESTARTS_ENV in os.environ
    if conf is None or not conf.requeue or not (job or local):
        say("checkpoint signal received, but this task may not be requeued")
        return False
    if restarts >= conf.max_requeues:
        say(f"checkpoint signal received, but the task was already requeued {restarts} "
            "time(s) (max_requeues); not again")
        return False
    if local or job is None:  # the local backend runs it again when this attempt replied
        say(f"checkpoint signal: {why}; requeued on this machine (restart {restarts + 1} of "
            f"at most {conf.max_requeues})")
        return True
    problem = slurm.requeue(job)
    if problem:
        say(f"could not requeue job {job}: {problem}")
        return False
    say(f"checkpoint signal: {why}; requeued (restart {restarts + 1} of at most "
        f"{conf.max_requeues})")
    return True
