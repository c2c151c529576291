"""Content-addressed snapshots of the user's code, so queued tasks run the code of their launch.

``take`` freezes ``code_path`` into ``<store>/<id>/code/``; the id is a hash of the sorted list of
(relative path, kind, content hash), so a later launch with identical content reuses the same
directory and pays only the hashing. ``gc`` removes old snapshots except those live jobs use.

Layout of the store (``paths.snapshots_dir(home)``)::

    <id>/code/            the frozen tree, read-only (see ``seal``); commands run here
    <id>/pycache/         Python's bytecode of the tree (PYTHONPYCACHEPREFIX of its commands)
    <id>/snapshot.json    id, size, creation time, code_path and git state of the take that made it
    .tmp-*/               a snapshot being built (renamed to <id> when complete, never counted)
    .trash-*/             a snapshot being deleted by gc (renamed away first, then removed)

What is copied (tracked plus untracked-not-ignored files of a git checkout, or the tree minus
excludes; symlinks, exec bits) is chosen by ``_snapshot_files``; its docstring says the rules.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .. import _atomic
from ..errors import SnapshotError
from .snapshot_files import EXEC, LINK, Entry, check_size, list_entries, never_rel, run_git

DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".git", "__pycache__", "*.pyc", ".venv", "venv", "node_modules", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints", ".DS_Store",
)
# 100 MB: source code, configs and small fixtures fit with room to spare; past that a tree almost
# always holds data, checkpoints or an environment. Every launch after an edit writes a full copy,
# so a larger default would fill a cluster home quota (often 10-50 GB) within a few dozen launches.
DEFAULT_MAX_BYTES = 100 * 1000**2

META = "snapshot.json"
CODE = "code"
_TMP = ".tmp-"
_TRASH = ".trash-"
_ID_HEX = 16                 # 64 bits of sha256: no collision among a user's snapshots
_TEMP_GRACE_S = 6 * 3600.0   # a half-built snapshot younger than this may still be in progress
_CHUNK = 1 << 20
_FSYNC_THREADS = 8
_WRITE = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


@dataclass(frozen=True)
class GitInfo:
    """The git state of ``code_path`` when it was snapshotted (scoped to ``code_path``).

    ``commit`` is None in a repository without commits; ``branch`` is None when HEAD is
    detached. ``diff_hash`` is a sha256 of ``git diff HEAD --binary`` plus the copied untracked
    files, or None when the tree is clean.
    """

    commit: str | None
    branch: str | None
    dirty: bool
    diff_hash: str | None


@dataclass(frozen=True)
class Snapshot:
    """A frozen code tree: run commands in ``path``.

    ``created_at`` is when the snapshot directory was first made; ``git`` and ``reused`` describe
    this take (a reused snapshot may have first been made from another commit with equal content).
    """

    id: str
    path: str
    files: int
    bytes: int
    created_at: str
    git: GitInfo | None
    reused: bool = False


@dataclass(frozen=True)
class RemovedSnapshot:
    """One directory ``gc`` removed (or would remove): a snapshot, or a leftover of a crash."""

    id: str
    path: str
    bytes: int
    idle_s: float


@dataclass(frozen=True)
class GcResult:
    """What ``gc`` removed (or, with ``dry_run``, would remove) and what it kept for live jobs."""

    removed: tuple[RemovedSnapshot, ...]
    kept_in_use: tuple[str, ...]
    dry_run: bool

    @property
    def bytes_freed(self) -> int:
        return sum(r.bytes for r in self.removed)


# ---------------------------------------------------------------- hashing and copying


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _digest(code: str, e: Entry) -> str:
    if e.kind == LINK:
        return hashlib.sha256(os.fsencode(e.target)).hexdigest()
    try:
        return _hash_file(os.path.join(code, e.rel))
    except OSError as exc:
        raise SnapshotError(f"cannot snapshot {code}: {e.rel} cannot be read ({exc.strerror}); "
                            "make it readable or leave it out with the snapshot excludes") from exc


def _snapshot_id(items: Iterable[tuple[str, str, str]]) -> str:
    """Hash of the sorted (relative path, kind, content hash) list: equal content, equal id."""
    h = hashlib.sha256()
    for rel, kind, digest in sorted(items, key=lambda t: os.fsencode(t[0])):
        h.update(os.fsencode(rel) + b"\0" + kind.encode() + b"\0" + digest.encode() + b"\n")
    return h.hexdigest()[:_ID_HEX]


def _copy_file(src: str, dst: str, executable: bool) -> tuple[str, int]:
    """Copy and hash in one read, so the copy is exactly what its id describes."""
    h = hashlib.sha256()
    size = 0
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o777 if executable else 0o666)
    with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
        while chunk := fin.read(_CHUNK):
            h.update(chunk)
            fout.write(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _copy_entry(code: str, e: Entry, target: str) -> tuple[str, int]:
    """Make ``target`` a copy of the file or symlink ``e``: its content hash and size."""
    if e.kind == LINK:
        os.symlink(e.target, target)
        return _digest(code, e), 0
    return _copy_file(os.path.join(code, e.rel), target, e.kind == EXEC)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_tree(code: str, entries: Sequence[Entry], dest: str) -> tuple[str, int]:
    """Copy ``entries`` into ``dest``; return the id of what was copied and its size.

    Every file reaches the disk before the snapshot is renamed into place (a power cut must not
    leave a complete-looking snapshot of empty files, which would be reused forever). The
    fsyncs run on a few threads while copying goes on: one after each file costs 3-4 times more.
    """
    os.makedirs(dest)
    items, total, dirs = [], 0, {dest}
    with ThreadPoolExecutor(_FSYNC_THREADS) as pool:
        synced = []
        for e in entries:
            target = os.path.join(dest, e.rel)
            parent = os.path.dirname(target)
            if parent not in dirs:
                os.makedirs(parent, exist_ok=True)
                dirs.add(parent)
            digest, size = _copy_entry(code, e, target)
            items.append((e.rel, e.kind, digest))
            total += size
            if e.kind != LINK:
                synced.append(pool.submit(_fsync_path, target))
        for done in synced:
            done.result()
    for d in sorted(dirs, key=len, reverse=True):
        _atomic.fsync_dir(d)
    return _snapshot_id(items), total


def seal(code_dir: str) -> None:
    """Take the write bits off every file and folder of a snapshot (links are left alone), so
    that a command writing to a relative path fails at once instead of changing the code every
    task of the launch shares (accounts the modes do not stop are checked by the worker,
    :mod:`experiments.worker.code_guard`). Bottom-up: a folder closes after its entries."""
    for top, _dirs, files in os.walk(code_dir, topdown=False):
        for name in files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & _WRITE:
                os.chmod(path, stat.S_IMODE(st.st_mode) & ~_WRITE)
        os.chmod(top, stat.S_IMODE(os.lstat(top).st_mode) & ~_WRITE)


def sealed(code_dir: str) -> bool:
    """Whether the snapshot's top folder has no write bit (snapshots taken before sealing
    existed have them all, and are sealed when a launch reuses them)."""
    try:
        return not os.lstat(code_dir).st_mode & _WRITE
    except OSError:
        return True  # nothing there to seal: load() reports what is missing


def remove_tree(path: str) -> None:
    """Remove a folder that may hold a sealed snapshot: its folders get their owner's write
    bit back first (top-down, so each can then be emptied)."""
    for top, _dirs, _files in os.walk(path):
        try:
            os.chmod(top, stat.S_IMODE(os.lstat(top).st_mode) | stat.S_IRWXU)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- git state


def _git_out(code: str, *args: str) -> str | None:
    res = run_git(code, *args)
    if not res.ok:
        return None
    return os.fsdecode(res.stdout).strip() or None


def _is_untracked(rel: str, untracked: Collection[str]) -> bool:
    """True for an untracked path, or a file inside an untracked folder (a nested repository)."""
    parts = rel.split("/")
    return any("/".join(parts[:i]) in untracked for i in range(1, len(parts) + 1))


def _git_info(code: str, digests: Mapping[str, str], untracked: Collection[str]) -> GitInfo:
    """Commit, branch, and whether (and how) the files under ``code`` differ from HEAD.

    ``digests`` maps each copied path to its content hash; the untracked ones (all of them
    before the first commit) enter the diff hash beside ``git diff HEAD``.
    """
    commit = _git_out(code, "rev-parse", "--verify", "-q", "HEAD")
    branch = _git_out(code, "symbolic-ref", "--short", "-q", "HEAD")
    extra = sorted((r, d) for r, d in digests.items()
                   if commit is None or _is_untracked(r, untracked))
    h = hashlib.sha256()
    changed = bool(extra)
    if commit is not None:
        diff = run_git(code, "diff", "HEAD", "--binary", "--no-ext-diff", "--no-textconv",
                       "--no-color", "--", ".")
        if not diff.ok:
            raise SnapshotError(f"cannot diff the git checkout {code}: {diff.describe()}")
        changed = changed or bool(diff.stdout)
        h.update(diff.stdout)
    for rel, digest in extra:
        h.update(b"\0uncommitted\0" + os.fsencode(rel) + b"\0" + digest.encode())
    return GitInfo(commit, branch, changed or commit is None, h.hexdigest() if changed else None)


# ---------------------------------------------------------------- the store


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def _meta(snap_id: str, files: int, size: int, code: str, git: GitInfo | None) -> dict[str, Any]:
    return {"format": 1, "id": snap_id, "files": files, "bytes": size, "created_at": _now(),
            "code_path": code, "git": None if git is None else git.__dict__}


def load(store_dir: str, snap_id: str) -> Snapshot:
    """The snapshot ``snap_id`` as recorded when it was made (``git`` of that first take)."""
    path = os.path.join(store_dir, snap_id)
    try:
        with open(os.path.join(path, META), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"snapshot {snap_id} in {store_dir} is missing or unreadable: "
                            f"{exc}") from exc
    git = GitInfo(**data["git"]) if data.get("git") else None
    return Snapshot(data["id"], os.path.join(path, CODE), data["files"], data["bytes"],
                    data["created_at"], git)


def _reuse(store_dir: str, snap_id: str, git: GitInfo | None) -> Snapshot | None:
    """The stored snapshot ``snap_id`` marked as just used, or None when there is none."""
    path = os.path.join(store_dir, snap_id)
    try:
        os.utime(path)  # gc measures idleness from the last use, not the creation
    except FileNotFoundError:
        return None
    snap = load(store_dir, snap_id)
    if not sealed(snap.path):
        seal(snap.path)
    return Snapshot(snap.id, snap.path, snap.files, snap.bytes, snap.created_at, git, True)


def _build(code: str, entries: Sequence[Entry], store_dir: str,
           git: GitInfo | None) -> Snapshot:
    """Copy into a temp dir beside the store's snapshots, then rename it to its id at once."""
    os.makedirs(store_dir, exist_ok=True)
    tmp = os.path.join(store_dir, f"{_TMP}{os.getpid()}-{os.urandom(4).hex()}")
    try:
        os.mkdir(tmp)
        snap_id, size = _copy_tree(code, entries, os.path.join(tmp, CODE))
        seal(os.path.join(tmp, CODE))
        _atomic.write_json(os.path.join(tmp, META), _meta(snap_id, len(entries), size, code, git))
        _atomic.fsync_dir(tmp)
        try:
            os.rename(tmp, os.path.join(store_dir, snap_id))
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            reused = _reuse(store_dir, snap_id, git)  # a concurrent take made the same one
            if reused is None:
                raise
            return reused
    finally:
        remove_tree(tmp)
    _atomic.fsync_dir(store_dir)
    return Snapshot(snap_id, os.path.join(store_dir, snap_id, CODE), len(entries), size,
                    load(store_dir, snap_id).created_at, git)


def take(code_path: str, store_dir: str, *, never_copy: Sequence[str] = (),
         excludes: Sequence[str] = DEFAULT_EXCLUDES,
         max_bytes: int = DEFAULT_MAX_BYTES) -> Snapshot:
    """Freeze ``code_path`` into ``store_dir`` (or reuse the snapshot of identical content).

    ``never_copy`` paths (and ``store_dir`` itself) are left out even inside ``code_path``.
    Raises ``SnapshotError`` past ``max_bytes`` (before reading any file), when ``code_path`` is
    not a directory, or when git fails on a checkout.
    """
    code = os.path.realpath(code_path)
    if not os.path.isdir(code):
        raise SnapshotError(f"cannot snapshot {code_path}: not a directory")
    never = never_rel(code, [*never_copy, store_dir])
    entries, untracked = list_entries(code, excludes, never)
    check_size(code_path, entries, max_bytes, untracked is not None)
    digests = {e.rel: _digest(code, e) for e in entries}
    git = None
    if untracked is not None:
        git = _git_info(code, digests, untracked)
    snap_id = _snapshot_id((e.rel, e.kind, digests[e.rel]) for e in entries)
    return _reuse(store_dir, snap_id, git) or _build(code, entries, store_dir, git)


def content_id(code_path: str, store_dir: str, *, never_copy: Sequence[str] = (),
               excludes: Sequence[str] = DEFAULT_EXCLUDES) -> str:
    """The id ``take`` would give ``code_path`` now, without copying anything (hashing only)."""
    code = os.path.realpath(code_path)
    if not os.path.isdir(code):
        raise SnapshotError(f"cannot snapshot {code_path}: not a directory")
    never = never_rel(code, [*never_copy, store_dir])
    entries, _untracked = list_entries(code, excludes, never)
    return _snapshot_id((e.rel, e.kind, _digest(code, e)) for e in entries)


@dataclass(frozen=True)
class Description:
    """What ``take`` would freeze, without copying: the entries with their content hashes
    (a link's is the hash of its target), the git state and the snapshot id."""

    code: str
    entries: tuple[Entry, ...]
    digests: Mapping[str, str]
    git: GitInfo | None
    id: str


def tree_id(items: Iterable[tuple[str, str, str]]) -> str:
    """The snapshot id of (relative path, kind, content hash) items: a tree shipped to a
    cluster (``--on``) carries the id its snapshot there gets."""
    return _snapshot_id(items)


def describe(code_path: str, *, never_copy: Sequence[str] = (),
             excludes: Sequence[str] = DEFAULT_EXCLUDES,
             max_bytes: int = DEFAULT_MAX_BYTES) -> Description:
    """Hash ``code_path`` as ``take`` would (same files, limit and errors), copying nothing:
    the laptop side of ``--on`` ships this to the cluster."""
    code = os.path.realpath(code_path)
    if not os.path.isdir(code):
        raise SnapshotError(f"cannot snapshot {code_path}: not a directory")
    entries, untracked = list_entries(code, excludes, never_rel(code, never_copy))
    check_size(code_path, entries, max_bytes, untracked is not None)
    digests = {e.rel: _digest(code, e) for e in entries}
    git = None if untracked is None else _git_info(code, digests, untracked)
    snap_id = _snapshot_id((e.rel, e.kind, digests[e.rel]) for e in entries)
    return Description(code, tuple(entries), digests, git, snap_id)


# ---------------------------------------------------------------- garbage collection


def _tree_bytes(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def _idle_s(path: str, now: float) -> float | None:
    try:
        return now - os.lstat(path).st_mtime
    except FileNotFoundError:
        return None


def _remove(store_dir: str, name: str, trash: list[str] | None = None) -> None:
    """Rename away first, so a half-deleted snapshot never looks complete; then delete (or,
    with ``trash``, leave the deleting to :func:`empty_trash`)."""
    path = os.path.join(store_dir, name)
    if not name.startswith((_TMP, _TRASH)):
        renamed = os.path.join(store_dir, f"{_TRASH}{name}-{os.urandom(4).hex()}")
        os.rename(path, renamed)
        path = renamed
    if trash is None:
        remove_tree(path)
    else:
        trash.append(path)


def empty_trash(trash: Collection[str]) -> None:
    """Delete what :func:`gc` renamed away (outside any lock: nothing can use it any more)."""
    for path in trash:
        remove_tree(path)


def _candidate(store_dir: str, name: str, older_than_s: float,
               now: float) -> RemovedSnapshot | None:
    """The directory ``name`` if gc may remove it: idle long enough, and ours to remove."""
    path = os.path.join(store_dir, name)
    idle = _idle_s(path, now)
    if idle is None or not os.path.isdir(path) or os.path.islink(path):
        return None
    if name.startswith((_TMP, _TRASH)):
        if idle <= max(older_than_s, _TEMP_GRACE_S):
            return None
        return RemovedSnapshot(name, path, _tree_bytes(path), idle)
    if idle <= older_than_s:
        return None
    try:
        size = load(store_dir, name).bytes
    except SnapshotError:
        return None  # not a snapshot: never delete what we did not make
    return RemovedSnapshot(name, path, size, idle)


def gc(store_dir: str, *, in_use: Collection[str], older_than_s: float,
       dry_run: bool = False, trash: list[str] | None = None) -> GcResult:
    """Remove snapshots unused for ``older_than_s`` seconds, except the ids in ``in_use``.

    Idleness counts from the last ``take`` that created or reused a snapshot. Leftovers of
    crashed builds or removals go too once idle for ``older_than_s`` (and at least 6 hours).
    With ``trash``, removed snapshots are only renamed away and their paths appended to it.
    """
    now = time.time()
    removed, kept = [], []
    try:
        names = sorted(os.listdir(store_dir))
    except FileNotFoundError:
        names = []
    for name in names:
        if name in in_use:
            kept.append(name)
            continue
        cand = _candidate(store_dir, name, older_than_s, now)
        if cand is None:
            continue
        if not dry_run:
            try:
                _remove(store_dir, name, trash)
            except FileNotFoundError:
                continue  # another gc got there first
        removed.append(cand)
    return GcResult(tuple(removed), tuple(kept), dry_run)
