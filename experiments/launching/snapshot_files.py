"""Which files a code snapshot holds, and the size check before anything is read.

What is copied:
  * a git checkout: tracked files plus untracked files that are not ignored, as they are on disk
    (uncommitted edits included; the tree is then recorded as dirty). A listed directory (a
    submodule or a nested repository) is copied as a plain tree with the excludes applied.
  * any other directory: the whole tree minus ``excludes``.
  * in both cases ``excludes`` (glob patterns; one without ``/`` matches any path component, one
    with ``/`` matches the relative path or a parent of it) and ``never_copy`` paths are left out.
  * symlinks are kept as symlinks. One whose target lies inside the tree (and outside
    ``never_copy``) points to the copy in the snapshot (made relative); any other (outside, or
    into an uncopied area) is rewritten to its absolute target, so it resolves to the same place
    as from ``code_path``. Its content is not frozen: a link to data stays a link to live data.
  * regular files keep their executable bit; empty directories, sockets, fifos and devices are
    not copied; the file mode otherwise follows the process umask.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from .. import _proc
from ..errors import SnapshotError

FILE, EXEC, LINK = "f", "x", "l"
_GIT_TIMEOUT_S = 300.0
_GLOB_BODY = re.compile(r"\(\?s:(.*)\)\\[Zz]", re.S)  # fnmatch.translate's wrapper


@dataclass(frozen=True)
class Entry:
    """One thing to copy: a regular file (plain or executable) or a symlink with its new target."""

    rel: str
    kind: str
    size: int
    target: str = ""


# ---------------------------------------------------------------- choosing what to copy


def _glob_body(pattern: str) -> str:
    """``fnmatch.translate`` without its anchoring wrapper, to embed in a larger regex."""
    found = _GLOB_BODY.fullmatch(fnmatch.translate(pattern))
    if found is None:  # a future Python with another wrapper: fail loudly, not silently
        raise RuntimeError(f"unexpected fnmatch.translate output for {pattern!r}")
    return found.group(1)


@functools.lru_cache(maxsize=16)
def _exclude_regex(excludes: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for all patterns: a pattern without ``/`` matches any path component, one with
    ``/`` matches the path from the top or any parent of it (so ``data/raw`` drops its files)."""
    alts = []
    for pat in excludes:
        body = _glob_body(pat.strip("/"))
        alts.append(f"(?:.*/)?{body}(?:/.*)?" if "/" not in pat else f"{body}(?:/.*)?")
    return re.compile("(?s:" + "|".join(alts) + ")") if alts else None


def excluded(rel: str, excludes: Sequence[str]) -> bool:
    """True when one of the glob patterns ``excludes`` leaves ``rel`` out of a snapshot."""
    regex = _exclude_regex(tuple(excludes))
    return regex is not None and regex.fullmatch(rel) is not None


def _under(rel: str, roots: Sequence[str]) -> bool:
    return any(rel == r or rel.startswith(r + "/") for r in roots)


def never_rel(code: str, never_copy: Iterable[str]) -> list[str]:
    """The ``never_copy`` paths that lie inside ``code``, relative to it (others need nothing)."""
    out = []
    for p in never_copy:
        real = os.path.realpath(p)
        if real == code:
            raise SnapshotError(
                f"{p} is the code directory itself, so it cannot be left out of its snapshot; "
                "keep the artifact root, EXPERIMENTS_HOME and the snapshot store outside "
                "code_path or in a subfolder of it")
        if os.path.commonpath([code, real]) == code:
            out.append(os.path.relpath(real, code).replace(os.sep, "/"))
    return out


def _walk(code: str, start: str, excludes: Sequence[str], never: Sequence[str]) -> Iterator[str]:
    """Relative paths of files and symlinks under ``code/start``, pruning excluded folders."""
    top = os.path.join(code, start) if start else code
    for dirpath, dirnames, filenames in os.walk(top):
        base = os.path.relpath(dirpath, code).replace(os.sep, "/")
        base = "" if base == "." else base + "/"
        keep = []
        for d in sorted(dirnames):
            rel = base + d
            if excluded(rel, excludes) or _under(rel, never):
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                yield rel  # a link to a folder is kept as a link, never followed
            else:
                keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            rel = base + f
            if not (excluded(rel, excludes) or _under(rel, never)):
                yield rel


def run_git(code: str, *args: str) -> _proc.BytesResult:
    return _proc.run_bytes(["git", "-C", code, *args], timeout_s=_GIT_TIMEOUT_S)


def _is_git(code: str) -> bool:
    """True inside a git work tree, unless the checkout ignores ``code`` itself.

    An ignored folder (a scratch tree under a repository) is not part of the checkout, so it
    is snapshotted as a plain tree rather than as an empty list of tracked files.
    """
    try:
        res = run_git(code, "rev-parse", "--is-inside-work-tree")
    except FileNotFoundError:
        return False  # no git installed: a plain tree
    if not (res.ok and res.stdout.strip() == b"true"):
        return False
    return run_git(code, "check-ignore", "-q", ".").returncode != 0


def _git_list(code: str, *flags: str) -> list[str]:
    """``git ls-files -z`` under ``code``, relative to it, decoded as the file system would."""
    res = run_git(code, "ls-files", "-z", *flags, "--", ".")
    if not res.ok:
        raise SnapshotError(f"cannot list the files of the git checkout {code}: {res.describe()}")
    return [os.fsdecode(p).rstrip("/") for p in res.stdout.split(b"\0") if p]


def _git_rels(code: str, excludes: Sequence[str], never: Sequence[str]) -> tuple[list[str],
                                                                                  set[str]]:
    """Tracked plus untracked-not-ignored paths, and which of them are untracked."""
    tracked = _git_list(code, "--cached")
    untracked = set(_git_list(code, "--others", "--exclude-standard"))
    rels: list[str] = []
    for rel in sorted(set(tracked) | untracked):
        if excluded(rel, excludes) or _under(rel, never):
            continue
        full = os.path.join(code, rel)
        if os.path.isdir(full) and not os.path.islink(full):  # submodule or nested repository
            rels.extend(_walk(code, rel, excludes, never))
        else:
            rels.append(rel)
    return rels, untracked


def _link_target(code: str, rel: str, never: Sequence[str]) -> str:
    """Where the copy of the symlink ``rel`` points (see the module docstring)."""
    raw = os.readlink(os.path.join(code, rel))
    here = os.path.dirname(os.path.join(code, rel))
    dest = os.path.normpath(os.path.join(here, raw))
    inside = os.path.commonpath([code, dest]) == code
    dest_rel = os.path.relpath(dest, code).replace(os.sep, "/")
    if inside and dest_rel != "." and not _under(dest_rel, never):
        return os.path.relpath(dest, here)
    return dest


def _entries(code: str, rels: Iterable[str], never: Sequence[str]) -> list[Entry]:
    """Classify each path; vanished paths and special files (fifos, sockets) are skipped."""
    out = []
    for rel in rels:
        try:
            st = os.lstat(os.path.join(code, rel))
        except FileNotFoundError:
            continue  # a tracked file deleted in the working tree: snapshot the tree as it is
        if stat.S_ISLNK(st.st_mode):
            out.append(Entry(rel, LINK, 0, _link_target(code, rel, never)))
        elif stat.S_ISREG(st.st_mode):
            kind = EXEC if st.st_mode & 0o111 else FILE
            out.append(Entry(rel, kind, st.st_size))
    return out


def list_entries(code: str, excludes: Sequence[str],
          never: Sequence[str]) -> tuple[list[Entry], set[str] | None]:
    """What to copy, and the untracked paths (None when ``code`` is not a git checkout)."""
    if _is_git(code):
        rels, untracked = _git_rels(code, excludes, never)
        return _entries(code, rels, never), untracked
    return _entries(code, _walk(code, "", excludes, never), never), None


# ---------------------------------------------------------------- size limit


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _largest(entries: Sequence[Entry]) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The five biggest files and the five biggest folders (by total size below them)."""
    folders: dict[str, int] = {}
    for e in entries:
        parts = e.rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            key = "/".join(parts[:i]) + "/"
            folders[key] = folders.get(key, 0) + e.size
    files = sorted(((e.rel, e.size) for e in entries), key=lambda x: -x[1])[:5]
    return files, sorted(folders.items(), key=lambda x: -x[1])[:5]


def check_size(code: str, entries: Sequence[Entry], max_bytes: int, git: bool) -> None:
    """Refuse a tree past ``max_bytes`` with what is big and how to leave it out."""
    total = sum(e.size for e in entries)
    if total <= max_bytes:
        return
    files, folders = _largest(entries)
    big = ", ".join(f"{name} ({_human(size)})" for name, size in files)
    dirs = ", ".join(f"{name} ({_human(size)})" for name, size in folders) or "none"
    how = ("add untracked ones to .gitignore, or list them in the snapshot excludes"
           if git else "list them in the snapshot excludes (glob patterns such as 'data' "
           "or '*.ckpt')")
    raise SnapshotError(
        f"cannot snapshot {code}: {len(entries)} files hold {_human(total)}, more than the "
        f"snapshot limit of {_human(max_bytes)}. Biggest files: {big}. Biggest folders: {dirs}. "
        f"Keep data, checkpoints and environments out of the snapshot ({how}), move them out of "
        "the code directory, or raise the snapshot size limit (max_bytes)")
