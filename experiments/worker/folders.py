"""Artifact folders are ours or refused: what keeps a lab-mate out of an artifact's results in
an artifact root shared with other accounts (standard library only: the worker uses it).

An artifact's folder follows from public parameters, so in a shared root another account could
create it first (mode 777) and swap the results after the build. Before building, the worker
therefore walks from the artifact root to the artifact's folder one folder at a time
(``mkdir``, then ``open`` with ``O_NOFOLLOW`` and ``fstat`` of what was opened, so a folder
someone else made meanwhile, or a symlink, is never followed), and each folder, the root too,
must be

* owned by the current user, root, or an account or group the config trusts
  (``trusted_users``/``trusted_groups``), and
* writable by nobody else: not by everyone unless sticky and owned by the user or root (like
  ``/tmp``); not by its group unless the group is trusted, root's or the owner's private group.

Otherwise the build is refused with a message naming the folder, its owner and mode, and the
fix. The same walk (without creating anything) and a look at every file in the folder (at most
``MAX_ENTRIES``) say whether a *built* artifact is still as its build left it: no file owned by
an untrusted account, none modified after the done marker. The worker asks that of each
dependency before building on it; ``table`` and the report ask it of the artifacts they show.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Collection

from .. import paths
from .trust import account, group_name, private_group

MAX_ENTRIES = 10_000  # files looked at per built artifact; a bigger tree is checked this far
_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# The worker's own files, rewritten after the done marker (or never outputs).
BOOKKEEPING = (paths.DONE, paths.STATUS, paths.LOCK, paths.BUILD_LOCK, paths.INVALIDATED)


class Refused(Exception):
    """An artifact folder (or one above it) another account could change: not built in."""


class Trust:
    """The accounts whose folders and files count as ours: the current user, root, and the
    users and groups the config trusts."""

    def __init__(self, uids: Collection[int] = (), gids: Collection[int] = ()) -> None:
        self.uids = frozenset({os.geteuid(), 0, *uids})
        self.gids = frozenset(gids)

    def owns(self, st: os.stat_result) -> bool:
        """Whether a trusted account owns the entry (by its user or its group)."""
        return st.st_uid in self.uids or st.st_gid in self.gids

    def problem(self, st: os.stat_result) -> str | None:
        """Why another account could change what a folder holds; None when none could."""
        if not self.owns(st):
            return f"it is owned by {account(st.st_uid)}"
        sticky = bool(st.st_mode & stat.S_ISVTX)
        if st.st_mode & stat.S_IWOTH and not (sticky and st.st_uid in (os.geteuid(), 0)):
            return "every user can write in it"
        if (st.st_mode & stat.S_IWGRP and not sticky and st.st_gid not in self.gids
                and st.st_gid != 0 and not private_group(st.st_gid, st.st_uid)):
            return f"every member of the group {group_name(st.st_gid)} can write in it"
        return None

    def fix(self, folder: str, st: os.stat_result) -> str:
        """How to make ``folder`` acceptable (or why it should go)."""
        if not self.owns(st):
            who = account(st.st_uid)
            return (f"you did not make it: have {who} (or an admin) remove it or move it aside "
                    "so the worker makes its own, or add "
                    f"{who} to trusted_users in config.json if you share results on purpose")
        if st.st_mode & stat.S_IWOTH:
            return f"chmod o-w {folder} (or chmod +t, if it is a shared folder you own)"
        mine = (' (and "umask": "022" in config.json, if your umask made it so)'
                if st.st_uid == os.geteuid() else "")
        return (f"chmod g-w {folder}{mine}, or add the group {group_name(st.st_gid)} to "
                "trusted_groups in config.json if its members share results with you on purpose")


def describe(st: os.stat_result) -> str:
    """``drwxrwxrwx expuser2:expuser2`` for messages."""
    return f"{stat.filemode(st.st_mode)} {account(st.st_uid)}:{group_name(st.st_gid)}"


def prepare(root: str, relpath: str, trust: Trust) -> None:
    """Make (or find) the folder ``root/relpath`` and every folder between, each one checked;
    raises :class:`Refused` naming the folder, its owner and mode, and the fix."""
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as exc:
        raise Refused(f"cannot make the artifact root {root}: {exc.strerror or exc}") from None
    try:
        fd = _walk(root, relpath, trust, create=True)
    except OSError as exc:
        raise Refused(f"cannot check the folders of {relpath} under {root}: "
                      f"{exc.strerror or exc}") from None
    if fd is not None:
        os.close(fd)


def chain_problem(root: str, relpath: str, trust: Trust) -> str | None:
    """Why the folders from ``root`` to ``root/relpath`` are not safely ours (nothing is made);
    None when they are."""
    try:
        fd = _walk(root, relpath, trust, create=False)
    except Refused as exc:
        return str(exc)
    except OSError as exc:
        return f"its folder cannot be checked: {exc.strerror or exc}"
    if fd is None:
        return "its folder is missing"
    os.close(fd)
    return None


def _walk(root: str, relpath: str, trust: Trust, create: bool) -> int | None:
    """An open descriptor of ``root/relpath`` reached folder by folder (None when one is
    missing and ``create`` is False)."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        _judge(fd, root, trust, relpath)
        here = root
        for name in [p for p in relpath.split("/") if p]:
            here = os.path.join(here, name)
            child = _descend(fd, name, here, trust, create, relpath)
            os.close(fd)
            fd = -1
            if child is None:
                return None
            fd = child
        return fd
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise


def _descend(parent: int, name: str, path: str, trust: Trust, create: bool,
             relpath: str) -> int | None:
    """Open folder ``name`` in ``parent`` (making it first when ``create``), never through a
    symlink, and judge what was opened."""
    if create:
        try:
            os.mkdir(name, 0o777, dir_fd=parent)
        except FileExistsError:
            pass
        except OSError as exc:  # e.g. a folder of someone else's we may not write in
            raise Refused(f"cannot make {path} for {relpath}: {exc.strerror or exc}") from None
    try:
        fd = os.open(name, _FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            return None
        raise Refused(f"refusing to build {relpath}: {path} vanished right after it was made; "
                      "someone else is changing this folder") from None
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise Refused(_not_a_folder(parent, name, path, relpath)) from None
    try:
        _judge(fd, path, trust, relpath)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _judge(fd: int, path: str, trust: Trust, relpath: str) -> None:
    st = os.fstat(fd)
    why = trust.problem(st)
    if why is not None:
        raise Refused(f"refusing to build {relpath} in {path} ({describe(st)}): {why}, so "
                      f"another account could change its results; {trust.fix(path, st)}")


def _not_a_folder(parent: int, name: str, path: str, relpath: str) -> str:
    st = os.lstat(name, dir_fd=parent)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(name, dir_fd=parent)
        return (f"refusing to build {relpath}: {path} is a symlink (to {target}, made by "
                f"{account(st.st_uid)}), and the worker never follows one out of an artifact's "
                f"folder; remove it (rm {path}) so the worker makes a real folder")
    return (f"refusing to build {relpath}: {path} is not a folder ({describe(st)}); remove it "
            "or choose another artifact root")


def built_problem(root: str, relpath: str, trust: Trust,
                  limit: int = MAX_ENTRIES) -> str | None:
    """Why a built artifact may not be as its build left it: its folders are not safely ours,
    or a file in it belongs to an untrusted account or changed after the done marker. None when
    neither (the first ``limit`` files are looked at)."""
    chain = chain_problem(root, relpath, trust)
    if chain is not None:
        return chain.replace("refusing to build ", "", 1)
    folder = paths.artifact_dir(root, relpath)
    try:
        marker = os.lstat(paths.done_marker(root, relpath))
    except OSError:
        return "its done marker is missing"
    return changed_after(folder, marker.st_mtime_ns, trust, limit)


def changed_after(folder: str, marker_ns: int, trust: Trust,
                  limit: int = MAX_ENTRIES) -> str | None:
    """The first file (or folder) under ``folder`` owned by an untrusted account or modified
    after ``marker_ns``, said in words; None when there is none among the first ``limit``."""
    todo, seen = [folder], 0
    while todo:
        path = todo.pop()
        try:
            entries = list(os.scandir(path))
        except OSError as exc:
            return f"{path} cannot be read ({exc.strerror or exc})"
        for entry in entries:
            if path == folder and entry.name.startswith(BOOKKEEPING):
                continue
            seen += 1
            if seen > limit:
                return None
            st = entry.stat(follow_symlinks=False)
            rel = os.path.relpath(entry.path, folder)
            if not trust.owns(st):
                return (f"{rel} in {folder} belongs to {account(st.st_uid)}, not to the "
                        "account that built it")
            if st.st_mtime_ns > marker_ns:
                later = (st.st_mtime_ns - marker_ns) / 1e9
                return (f"{rel} in {folder} was modified {_age(later)} after its done marker "
                        f"(at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(st.st_mtime))})")
            if stat.S_ISDIR(st.st_mode):
                todo.append(entry.path)
    return None


def _age(seconds: float) -> str:
    if seconds < 1:
        return "less than a second"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
