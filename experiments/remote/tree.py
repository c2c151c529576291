"""The cluster side's code store: blobs by content, and the trees built from them.

Layout under a remote's ``code_root``::

    objects/ab/cdef…          one file's content, named by its sha256 (read-only)
    <project>/trees/<id>/     a code tree as the laptop has it (id: its snapshot id)
    <project>/trees/.tmp-*/   a tree being built (renamed to <id> when complete)
    <project>/manifests/<id>  its manifest, so a later tree can be sent as changes to it

A blob is checked against its name before it is stored, and a tree's id against its entries,
so a damaged transfer never poses as code. Trees are immutable: regular files are hard links to
their blob where the file system allows (copies otherwise, and for executables), symlinks are
made as the laptop had them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from typing import Any

from .. import _atomic
from ..launching.snapshot_files import EXEC, FILE, LINK
from ..launching.snapshots import tree_id

_DIGEST = re.compile(r"[0-9a-f]{64}")
_ID = re.compile(r"[0-9a-f]{16}")
_TMP = ".tmp-"


class TreeError(Exception):
    """What the laptop sent does not describe a tree we can build (the message says why)."""


def object_path(root: str, digest: str) -> str:
    """Where the blob ``digest`` lives under ``root``."""
    if not _DIGEST.fullmatch(digest):
        raise TreeError(f"{digest!r:.80} is not a sha256 digest")
    return os.path.join(root, "objects", digest[:2], digest[2:])


def missing(root: str, digests: Iterable[str]) -> list[str]:
    """The digests among ``digests`` that have no blob yet (each once, in order)."""
    return [d for d in dict.fromkeys(digests) if not os.path.exists(object_path(root, d))]


def put(root: str, digest: str, content: bytes) -> bool:
    """Store ``content`` as the blob ``digest`` once it matches; False when it was there."""
    path = object_path(root, digest)
    if hashlib.sha256(content).hexdigest() != digest:
        raise TreeError(f"a blob sent as {digest[:12]}… has other content (damaged in transit, "
                        "or the file changed while it was sent); run the command again")
    if os.path.exists(path):
        return False
    _atomic.write_bytes(path, content, mode=0o444)
    return True


def tree_dir(root: str, project: str, tid: str) -> str:
    """Where the tree ``tid`` of ``project`` lives."""
    if not _ID.fullmatch(tid) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", project):
        raise TreeError(f"tree {tid!r:.40} of project {project!r:.60} is not a usable name")
    return os.path.join(root, project, "trees", tid)


def _checked(entries: Sequence[Sequence[str]]) -> list[tuple[str, str, str]]:
    """The entries as (rel, kind, digest or link target), refusing any path that could leave
    the tree (absolute, ``..``, empty parts) and any unknown kind."""
    out = []
    for item in entries:
        if len(item) != 3 or not all(isinstance(x, str) for x in item):
            raise TreeError(f"a manifest entry {item!r:.80} is not (path, kind, digest)")
        rel, kind, ref = item
        parts = rel.split("/")
        if rel.startswith("/") or "\x00" in rel or any(p in ("", ".", "..") for p in parts):
            raise TreeError(f"the manifest names {rel!r:.80}, which is not a path inside a tree")
        if kind not in (FILE, EXEC, LINK) or (kind != LINK and not _DIGEST.fullmatch(ref)):
            raise TreeError(f"the manifest entry for {rel!r:.80} has kind {kind!r:.10}")
        if kind == LINK and "\x00" in ref:
            raise TreeError(f"the link {rel!r:.80} has a target with a NUL byte")
        out.append((rel, kind, ref))
    return out


def _item(rel: str, kind: str, ref: str) -> tuple[str, str, str]:
    """The (rel, kind, content hash) a snapshot id is made of (a link's: its target's hash)."""
    return rel, kind, hashlib.sha256(os.fsencode(ref)).hexdigest() if kind == LINK else ref


def file_digests(entries: Sequence[Sequence[str]]) -> list[str]:
    """The blobs a tree needs (its regular files' digests)."""
    return [e[2] for e in _checked(entries) if e[1] != LINK]


def build(root: str, project: str, tid: str, entries: Sequence[Sequence[str]]) -> str:
    """Make the tree ``tid`` from stored blobs (or find it made); returns its folder."""
    dest = tree_dir(root, project, tid)
    if os.path.isdir(dest):
        os.utime(dest)  # used now: a future clean-up measures idleness from here
        return dest
    checked = _checked(entries)
    if tree_id(_item(*e) for e in checked) != tid:
        raise TreeError(f"the manifest sent for tree {tid} does not hash to that id")
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f"{_TMP}{os.getpid()}-{os.urandom(4).hex()}")
    try:
        os.mkdir(tmp)
        for rel, kind, ref in checked:
            _place(root, os.path.join(tmp, rel), kind, ref)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not os.path.isdir(dest):  # not a concurrent build of the same tree: a failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _atomic.write_json(_manifest_path(root, project, tid), [list(e) for e in checked],
                       indent=None, durable=False)
    return dest


def _manifest_path(root: str, project: str, tid: str) -> str:
    """Where the manifest of tree ``tid`` is kept (beside the trees, not in one)."""
    return os.path.join(os.path.dirname(os.path.dirname(tree_dir(root, project, tid))),
                        "manifests", tid)


def from_delta(root: str, project: str, delta: dict[str, Any]) -> list[list[str]] | None:
    """The manifest ``delta`` describes (changes to a tree built here), or None when that
    tree's manifest is not here (the laptop then sends the whole manifest)."""
    try:
        with open(_manifest_path(root, project, str(delta["base"])), encoding="utf-8") as fh:
            base = json.load(fh)
        changed = {e[0]: e for e in delta["set"]}
        dropped = set(delta["drop"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    kept = [e for e in base if e[0] not in changed and e[0] not in dropped]
    return [*kept, *changed.values()]


def _place(root: str, target: str, kind: str, ref: str) -> None:
    """One entry of a tree being built: a link to the blob, a copy, or a symlink."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if kind == LINK:
        os.symlink(ref, target)
        return
    blob = object_path(root, ref)
    if kind == FILE:
        try:
            os.link(blob, target)
            return
        except OSError:
            pass  # no hard links here (another file system, a policy): copy
    shutil.copyfile(blob, target)
    os.chmod(target, 0o555 if kind == EXEC else 0o444)
