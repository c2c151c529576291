"""A code snapshot is in use from the moment a launch takes it: ``gc`` and ``launch`` exclude
each other on the snapshot store.

``gc`` used to decide which snapshots are in use from the job records alone; a launch records its
first job only after it has taken (or reused) its snapshot, so a ``gc --older-than 0`` in between
deleted the snapshot the launch was about to submit, and every task failed with ``code_path …
does not exist``. Now:

* a launch takes its snapshot under a *shared* lock on the store (``<home>/snapshots.lock``; many
  launches, of any projects, may take at once) and, before letting go, *pins* it: it writes the
  id to ``projects/<project>/.launch.snapshot``. The pin counts while the project's launch lock
  is held (the launch runs); a pin left by a dead launch counts for nothing;
* ``gc`` holds the lock *exclusively* while it decides what is in use (the records, and the pins
  of the launches running now) and renames the rest away; it deletes them after letting go.

So a snapshot is either pinned, or recorded as the snapshot of a job, or being taken under the
shared lock, at every moment from its take until the launch ends. The locks are ``flock``s in the
experiments home, like the store's own.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from .. import _atomic, paths
from ..config.settings import lock_mode
from ..errors import ExperimentsError

TAKE_WAIT_S = 300.0   # a launch waits this long for a gc that holds the store
COLLECT_WAIT_S = 60.0  # gc waits this long for launches taking snapshots, then skips them
PIN = ".launch.snapshot"


def lock_path(home: Path) -> Path:
    """The lock a launch holds shared while taking a snapshot, and gc exclusively."""
    return home / "snapshots.lock"


def _pin_path(home: Path, project: str) -> Path:
    return paths.project_dir(home, project) / PIN


@contextmanager
def _flock(path: Path, how: int, wait_s: float, umask: int) -> Iterator[bool]:
    """``flock(how)`` on ``path``, retried for ``wait_s``; yields whether it was had."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, lock_mode(umask))
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, how | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        yield True
    finally:
        os.close(fd)  # closing releases the flock


@contextmanager
def taking(home: Path, project: str, umask: int) -> Iterator[None]:
    """Around a launch's snapshot take (then :func:`pin`): waits while gc holds the store."""
    with _flock(lock_path(home), fcntl.LOCK_SH, TAKE_WAIT_S, umask) as got:
        if not got:
            raise ExperimentsError(
                f"cannot launch project {project!r}: `gc` has held the code snapshot store "
                f"({lock_path(home)}) for {TAKE_WAIT_S:.0f} s; nothing was submitted. Launch "
                "again when it has finished")
        yield


def pin(home: Path, project: str, snapshot_id: str) -> None:
    """Mark ``snapshot_id`` as in use by the running launch of ``project`` (under its lock)."""
    _atomic.write_bytes(str(_pin_path(home, project)), snapshot_id.encode("ascii"), mode=0o600,
                        durable=False)


def unpin(home: Path, project: str) -> None:
    """The launch has ended: its jobs' records now say which snapshot they use."""
    try:
        _pin_path(home, project).unlink()
    except FileNotFoundError:
        pass


@contextmanager
def collecting(home: Path, umask: int, wait_s: float = COLLECT_WAIT_S) -> Iterator[bool]:
    """Around gc's decision and removal; yields False when launches kept taking snapshots for
    ``wait_s`` (gc then leaves the snapshots alone this time)."""
    with _flock(lock_path(home), fcntl.LOCK_EX, wait_s, umask) as got:
        yield got


def launch_running(home: Path, project: str, umask: int) -> bool:
    """Whether a launch of ``project`` holds its launch lock now (a glance: never waits)."""
    path = paths.launch_lock(home, project)
    if not path.exists():
        return False
    lock = FileLock(str(path), timeout=0, mode=lock_mode(umask))
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


def pinned(home: Path, projects: list[str], umask: int) -> set[str]:
    """Snapshot ids pinned by launches of ``projects`` that are running now."""
    out = set()
    for project in projects:
        try:
            snap = _pin_path(home, project).read_text(encoding="ascii").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            continue
        if snap and launch_running(home, project, umask):
            out.add(snap)
    return out
