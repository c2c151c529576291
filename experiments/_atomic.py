"""Atomic file writes: unique temp file in the same directory, fsync, rename, fsync the directory.

A reader sees the old content or the new one, never a torn file, whatever crashes in between.
"""

from __future__ import annotations

import json
import os

from ._faults import crash_point

TYPE_CHECKING = False  # typing costs every task's worker a few ms: only mypy reads this
if TYPE_CHECKING:
    from typing import Any


def write_bytes(path: str, data: bytes, mode: int = 0o666, durable: bool = True,
                crash_label: str | None = None) -> None:
    """Atomically replace ``path`` with ``data`` (parent directories are created).

    ``durable`` also fsyncs the file and its directory, so the rename survives a power cut.
    """
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if crash_label:
            crash_point(crash_label)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(parent)


def write_json(path: str, data: Any, mode: int = 0o666, indent: int | None = 1,
               durable: bool = True, crash_label: str | None = None) -> None:
    """Atomically write ``data`` as JSON."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, sort_keys=False)
    write_bytes(path, (text + "\n").encode("utf-8"), mode, durable, crash_label)


def read_own_json(path: str) -> Any:
    """The JSON in ``path`` when this account owns the file; None when it is missing, another
    account's (a cache someone else could have planted) or not JSON."""
    try:
        if os.stat(path).st_uid != os.getuid():
            return None
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def keep_json(path: str, data: Any, indent: int | None = 1) -> None:
    """Write a cache file of ours (folder 0700, file 0600, atomically but not fsynced), best
    effort: losing or failing to write a cache costs time, never truth."""
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        write_json(path, data, mode=0o600, indent=indent, durable=False)
    except OSError:
        pass


def fsync_dir(path: str) -> None:
    """Make a rename in ``path`` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
