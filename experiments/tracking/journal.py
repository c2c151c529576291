"""The store's journal file on disk: a header that ties it to its snapshot, then one event a line.

A journal that vanished, was emptied or lost its last lines used to look like a journal with
fewer events, so records disappeared without a word and a relaunch submitted twins of queued
jobs. Now the snapshot (``jobs.json``) names its journal by number *and* by a random id, and the
journal starts with one fixed-width header line::

    {"op": "header", "journal": 7, "id": "3f2a9c0d5e6b7a81", "committed": "00000000000000004711"}

``committed`` is how many bytes of the file hold committed events (header included). A writer
updates it in place (``pwrite`` of the 20 digits) *after* the event line and its newline are
fsynced, so it never runs ahead of what is on disk: after a power cut it may lag (the lines past
it that end in a newline still count), but it can only be larger than the file when the file
was shortened by something else. So a reader can tell, without any extra file or fsync:

* missing (the snapshot names it) — :func:`lost`;
* empty, or not starting with the header the snapshot expects — :func:`lost`;
* shorter than ``committed`` (truncated, or replaced by an older copy) — :func:`lost`.

A torn last line past ``committed`` is still what it always was: an event never committed.
Standard library only, like the store.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .. import _atomic
from ..errors import StoreError

DIGITS = 20
_SUFFIX = b'"}\n'


@dataclass(frozen=True)
class Header:
    """Where a journal's header ends and where its ``committed`` digits lie."""

    size: int        # bytes of the header line, newline included
    digits_at: int   # offset of the 20 committed digits


def _prefix(generation: int, ident: str) -> bytes:
    return (f'{{"op": "header", "journal": {generation}, "id": "{ident}", '
            f'"committed": "').encode("ascii")


def layout(generation: int, ident: str) -> Header:
    """The header's size and the offset of its digits for journal ``generation``/``ident``."""
    prefix = _prefix(generation, ident)
    return Header(len(prefix) + DIGITS + len(_SUFFIX), len(prefix))


def _digits(value: int) -> bytes:
    return str(value).rjust(DIGITS, "0").encode("ascii")


def create(path: Path, generation: int, ident: str, mode: int) -> Header:
    """Write a new journal holding only its header (durably: fsync, then its directory)."""
    head = layout(generation, ident)
    data = _prefix(generation, ident) + _digits(head.size) + _SUFFIX
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _atomic.fsync_dir(str(path.parent))
    return head


def set_committed(fd: int, head: Header, value: int) -> None:
    """Record that the first ``value`` bytes are committed (after they were fsynced)."""
    os.pwrite(fd, _digits(value), head.digits_at)


def committed(fd: int, path: Path, generation: int, ident: str) -> int:
    """The committed length the header of the open journal states; raises :func:`lost` when the
    file is empty or does not start with the header its snapshot expects."""
    head = layout(generation, ident)
    raw = os.pread(fd, head.size, 0)
    prefix = _prefix(generation, ident)
    digits = raw[head.digits_at:head.digits_at + DIGITS]
    if not raw:
        raise lost(path, "is empty (jobs.json names it)")
    if (len(raw) < head.size or not raw.startswith(prefix) or not digits.isdigit()
            or not raw.endswith(_SUFFIX)):
        raise lost(path, f"does not start with the header jobs.json expects (journal "
                         f"{generation}, id {ident})")
    return int(digits)


def orphan_events(path: Path) -> bool:
    """Whether a journal without a snapshot holds events (an empty one is a first snapshot
    being written, or left by a crash while it was: harmless)."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline()
            return bool(fh.read(1)) or (bool(first) and not first.startswith(b'{"op": "header"'))
    except FileNotFoundError:
        return False


def _aside(path: Path) -> str:
    """Copy a damaged file aside; say where (or that it could not be)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.damaged-{stamp}-{os.getpid()}")
    try:
        shutil.copy2(path, aside)
    except FileNotFoundError:
        return ""
    except OSError:
        return "it could not be copied aside; "
    return f"a copy is kept at {aside}; "


def damaged(path: Path, why: str) -> StoreError:
    """A tracking file that cannot be read (bad JSON, an event that cannot apply)."""
    return StoreError(
        f"tracking file {path} is damaged ({why}); {_aside(path) or 'it is gone; '}Repair it, "
        "or delete it to start this stage's tracking afresh (built artifacts are still "
        "recognised by their done markers, but queued jobs will be forgotten)")


def lost(path: Path, why: str) -> StoreError:
    """Events of a stage are gone: its journal (or its snapshot) is missing or shortened."""
    stage = path.parent
    project = stage.parent.name
    return StoreError(
        f"tracking file {path} {why}, so records of jobs submitted or changed in stage "
        f"{stage.name!r} of project {project!r} may be lost (nothing is read or "
        f"submitted until this is resolved); {_aside(path)}Restore the file from a backup, or "
        f"start this stage's tracking afresh by moving {stage} aside: built artifacts are "
        "still recognised by their done markers, but jobs still queued are then forgotten — "
        f"cancel them first (`squeue --me` lists them as {project[:40]}.{stage.name[:40]}.*), "
        "or the next launch submits them again")
