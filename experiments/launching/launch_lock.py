"""Who may launch now: the project's launch lock, and the lock of the artifact root a run
builds into; each says who holds it.

A launch holds both while it plans, takes its snapshot and records its jobs: launches of one
project never interleave there (the store's intents, job ids, the snapshot pin). A Slurm launch
ends then. A local run goes on building for hours: once its jobs are recorded it hands the
project's lock back (:meth:`LaunchLocks.running`) and keeps only its root's, so a launch of the
same project into another root goes ahead, and only one into the same root is refused.

A refusal names the holder (a local run or a launch, its pid, host and start, and its root) from
the small file each holder writes beside its lock; a file whose process is gone names nobody.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from .. import _atomic, _proc, paths
from ..config.settings import lock_mode
from ..errors import ExperimentsError
from .snapshot_pins import unpin

PROJECT_WAIT_S = 2.0


def root_lock(home: Path, project: str, root: str) -> Path:
    """The lock of one artifact root of ``project`` (held by a launch into it, and by a local
    run into it for as long as it builds)."""
    tag = hashlib.blake2b(os.path.normpath(root).encode("utf-8"), digest_size=8).hexdigest()
    return paths.project_dir(home, project) / f".run-{tag}.lock"


def _holder_file(lock: Path) -> Path:
    return lock.with_suffix(".holder")


def describe_holder(lock: Path) -> str:
    """Who holds ``lock``, in words ("" when its holder file names no live process)."""
    try:
        info = json.loads(_holder_file(lock).read_text(encoding="utf-8"))
        pid, start = int(info["pid"]), info.get("start")
        what, host, root = str(info["what"]), str(info["host"]), str(info["root"])
        since = str(info.get("since", "?"))
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    if host == socket.gethostname() and not _proc.alive(pid, start):
        return ""
    return f"{what} (pid {pid} on {host}, since {since}) building into {root}"


class LaunchLocks:
    """The locks one launch holds: its project's, then its artifact root's."""

    def __init__(self, home: Path, project: str, root: str, umask: int) -> None:
        self.home, self.project, self.root = home, project, root
        mode = lock_mode(umask)
        self.project_path = paths.launch_lock(home, project)
        self.root_path = root_lock(home, project, root)
        self.project_path.parent.mkdir(parents=True, exist_ok=True)
        self._project = FileLock(str(self.project_path), timeout=PROJECT_WAIT_S, mode=mode)
        self._root = FileLock(str(self.root_path), timeout=0, mode=mode)

    def acquire(self) -> None:
        """Both locks, or an error that says who holds the one that is taken."""
        try:
            self._project.acquire()
        except Timeout:
            raise ExperimentsError(self._refusal(self.project_path, "")) from None
        try:
            self._root.acquire()
        except Timeout:
            self._project.release()
            raise ExperimentsError(self._refusal(self.root_path, self.root)) from None
        self._say(self.project_path, "a launch")
        self._say(self.root_path, "a launch")

    def running(self) -> None:
        """A local run's jobs are recorded: keep its root, hand the project back (its
        snapshot pin is given up too: the live jobs' records name the snapshot now)."""
        if self._project.is_locked:
            self._say(self.root_path, "a local run")
            self._let_go_of_project()

    def release(self) -> None:
        """Let go of what is still held (the pin only with the project's lock)."""
        if self._project.is_locked:
            self._let_go_of_project()
        if self._root.is_locked:
            _forget(_holder_file(self.root_path))
            self._root.release()

    def _let_go_of_project(self) -> None:
        _forget(_holder_file(self.project_path))
        unpin(self.home, self.project)
        self._project.release()

    def _say(self, lock: Path, what: str) -> None:
        """Write who holds ``lock`` (best effort: only messages read it)."""
        info = {"what": what, "pid": os.getpid(), "host": socket.gethostname(),
                "start": _proc.process_start(os.getpid()), "root": self.root,
                "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            _atomic.write_json(str(_holder_file(lock)), info, durable=False)
        except OSError:
            pass

    def _refusal(self, lock: Path, root: str) -> str:
        holder = describe_holder(lock) or f"another process (lock {lock})"
        if root:
            return (f"another launch of project {self.project!r} is running: {holder}; "
                    f"a launch into {root} waits until it ends. Wait for it (`status`), or "
                    "stop it with `cancel`")
        return (f"another launch of project {self.project!r} is running: {holder} (lock "
                f"{lock}); wait for it to finish, or check `status`")


def _forget(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
