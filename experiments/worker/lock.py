"""The lock a worker holds while it builds an artifact: ``flock``, or a lock file where the file
system has no ``flock`` (Lustre mounted without it, some NFS setups: ENOSYS, EOPNOTSUPP, ENOLCK).

``flock`` on ``<relpath>/.lock`` is the normal case: the kernel (or the file system) releases it
when its holder dies, so it never goes stale. Where ``flock`` is not supported, the worker
creates ``<relpath>/.build-lock`` exclusively (``O_CREAT|O_EXCL``) and writes who holds it in
one ``write``: job, Slurm job id, host, pid namespace, pid and the pid's start time. Such a file
outlives a killed worker, so a worker that finds one checks, itself, whether its holder still
lives, by what the holder is:

* a Slurm job: that job, asked about once (:func:`.slurm.job_live`, 10 s timeout); an ended or
  unknown job is gone, and so is our own job id (a requeued task's earlier attempt). Its pid is
  not asked first: containerised jobs on one host each have their own pid namespace, where the
  holder's pid 1 is not ours;
* no Slurm job, or Slurm cannot say: on the same host *and* in the same pid namespace (the
  inode of ``/proc/self/ns/pid``), its pid with the same start time (a reused pid is not it);
* anything it cannot tell (Slurm does not answer, another host or another pid namespace
  without a Slurm job) counts as live: the artifact is then reported busy with the holder's
  name and the file to remove, never built twice.

The worker checks, not ``status`` or ``launch``, because only it needs the answer, at the moment
it wants the lock. A stale file is renamed aside before it is replaced, and the renamed copy is
compared with what was judged stale, so two workers taking over at once cannot both win.
Standard library only: the worker imports it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time

from .. import _proc
from . import slurm

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: errnos saying that ``flock`` is not supported here (fall back to a lock file).
UNSUPPORTED = frozenset({errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOLCK,
                         errno.EINVAL})
#: errnos saying that another process holds the ``flock``.
HELD = frozenset({errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES})
WRITING_S = 60.0  # a lock file still empty or unreadable this young is being written
RECHECK_S = 30.0  # while waiting, ask Slurm about the same holder at most this often


class LockError(OSError):
    """The artifact cannot be locked at all (neither ``flock`` nor a lock file works)."""


def me(job: str) -> dict[str, Any]:
    """What a lock file says about this process."""
    pid = os.getpid()
    return {"job": job, "slurm_job_id": slurm.job_id(),
            "host": os.uname().nodename, "pid_ns": pid_namespace(), "pid": pid,
            "pid_start": _proc.process_start(pid), "token": os.urandom(8).hex()}


def pid_namespace() -> int | None:
    """This process's pid namespace (the inode of ``/proc/self/ns/pid``); None without /proc."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def describe(owner: dict[str, Any]) -> str:
    """``12_3 (pid 4242 on node7)`` for messages."""
    where = f" (pid {owner['pid']} on {owner.get('host')})" if owner.get("pid") else ""
    return f"{owner.get('job') or 'a worker'}{where}"


class ArtifactLock:
    """One artifact's build lock, for one worker; ``acquire`` may be called again while waiting.

    ``method`` says which locking is in use (for the log); ``holder`` who holds it when
    ``acquire`` returned False (None: flock says held, but not by whom).
    """

    def __init__(self, flock_path: str, file_path: str, owner: dict[str, Any],
                 say: Callable[[str], None]) -> None:
        self.flock_path, self.file_path, self.owner, self.say = flock_path, file_path, owner, say
        self.method = "flock"
        self.holder: dict[str, Any] | None = None
        self._fd: int | None = None
        self._held = False
        self._checked: dict[str, tuple[float, bool | None]] = {}  # token -> (when, live)

    def acquire(self) -> bool:
        """Take the lock without blocking: True if held now; raises LockError if impossible."""
        if self.method == "flock":
            got = self._flock()
            if got is not None:
                self._held = got
                return got
        self._held = self._create()
        return self._held

    def release(self) -> None:
        """Let go (the lock file only if it is still ours)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._held and self.method != "flock":
            raw = _read(self.file_path)
            if raw is not None and _parse(raw).get("token") == self.owner["token"]:
                _unlink(self.file_path)
        self._held = False

    # -- flock ------------------------------------------------------------------------------
    def _flock(self) -> bool | None:
        """True/False from flock; None when flock is unsupported here (switches to a file)."""
        if self._fd is None:
            try:
                self._fd = os.open(self.flock_path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise LockError(exc.errno, f"cannot open {self.flock_path}: "
                                f"{os.strerror(exc.errno or 0)}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno in HELD:
                return False
            if exc.errno not in UNSUPPORTED:
                raise LockError(exc.errno, f"cannot lock {self.flock_path}: "
                                f"{os.strerror(exc.errno or 0)}") from None
            self.method = (f"lock file {os.path.basename(self.file_path)} (flock is not "
                           f"supported here: {errno.errorcode.get(exc.errno or 0, exc.errno)})")
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            return None

    # -- lock file --------------------------------------------------------------------------
    def _create(self) -> bool:
        data = (json.dumps(self.owner, sort_keys=True) + "\n").encode()
        for _ in range(3):
            try:
                fd = os.open(self.file_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                try:
                    raw = _read(self.file_path)
                except PermissionError:  # another account's: it cannot be judged from here
                    self.holder = {"job": f"another account's worker ({self.file_path} is "
                                          "not readable here)"}
                    return False
                if raw is None:  # gone in between: try again
                    continue
                owner = _parse(raw)
                why = self._stale(owner, self.file_path)
                if why is None:
                    self.holder = owner or {"job": "a worker writing its lock file"}
                    return False
                self.say(f"taking over the stale lock file {self.file_path}: {why}")
                _take_aside(self.file_path, raw)
                continue
            except OSError as exc:
                raise LockError(exc.errno, f"cannot create the lock file {self.file_path}: "
                                f"{os.strerror(exc.errno or 0)}") from None
            try:
                os.fchmod(fd, 0o644)  # who holds it is no secret: any builder may judge it
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            return True
        return False

    def _stale(self, owner: dict[str, Any], path: str) -> str | None:
        """Why ``owner``'s lock is stale, or None while it may be live."""
        if not owner:
            age = _age_s(path)
            return (f"it is empty or unreadable and {age:.0f} s old"
                    if age is not None and age > WRITING_S else None)
        job = owner.get("slurm_job_id")
        if job and job == self.owner.get("slurm_job_id"):
            return f"it was written by an earlier attempt of this job ({job})"
        if not job:
            return self._stale_process(owner)
        token = str(owner.get("token"))
        seen = self._checked.get(token)
        if seen is None or time.monotonic() - seen[0] > RECHECK_S:
            seen = (time.monotonic(), slurm.job_live(str(job), self.say))
            self._checked[token] = seen
        if seen[1] is None:  # Slurm cannot say: its process, where its pid means the same
            return self._stale_process(owner)
        return None if seen[1] else f"its Slurm job {job} ({describe(owner)}) has ended"


    def _stale_process(self, owner: dict[str, Any]) -> str | None:
        """A holder without a Slurm job: judged by its pid only where that pid means the same
        process as here (same host, same pid namespace); None (live) where it cannot be told."""
        pid, start = owner.get("pid"), owner.get("pid_start")
        if owner.get("host") != self.owner["host"] or not isinstance(pid, int):
            return None
        if "pid_ns" in owner and owner["pid_ns"] != self.owner.get("pid_ns"):
            return None  # another pid namespace on this host: its pid is not ours to look up
        if _pid_live(pid, start):
            return None
        return f"its holder {describe(owner)} is gone"


def _pid_live(pid: int, start: Any) -> bool:
    if isinstance(start, int):
        return _proc.alive(pid, start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _take_aside(path: str, judged: bytes) -> None:
    """Remove the stale lock file we judged; if someone replaced it meanwhile, put theirs back."""
    aside = f"{path}.stale-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    if _read(aside) != judged:
        try:
            os.link(aside, path)
        except OSError:
            pass
    _unlink(aside)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(4096)
    except FileNotFoundError:
        return None


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _age_s(path: str) -> float | None:
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


BUSY_WAIT_DEFAULT_S = 24 * 3600.0  # no time limit known: the lock holder's own life bounds it
BUSY_MARGIN_S = 60.0  # stop waiting this long before our own time limit


def wait_budget_s() -> float:
    """How long a worker may wait for a concurrent build of its artifact.

    ``$EXPERIMENTS_BUSY_WAIT_S`` if set; else until ``BUSY_MARGIN_S`` before the job's end time
    (:func:`.slurm.job_end_time`); else a day.
    """
    override = os.environ.get("EXPERIMENTS_BUSY_WAIT_S")
    if override:
        try:
            return max(0.0, float(override))
        except ValueError:
            pass
    end = slurm.job_end_time()
    if end is None:
        return BUSY_WAIT_DEFAULT_S
    return max(0.0, end - time.time() - BUSY_MARGIN_S)
