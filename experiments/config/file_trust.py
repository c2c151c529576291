"""Who could change a config file whose lines run in every job: the file, its folder and every
folder up to ``/``, with each symlink on the way followed and its target judged the same way.

A site file's ``setup`` lines run in every user's jobs, a user file's in all of theirs. Such a
file is trusted only when nobody but a trusted account can change what it says:

* every file, folder and symlink met on the way is owned by root, by the current user or (for
  the site file) by the file's own owner, the site's maintainer;
* none is writable by its group, unless the group is root's or the owner's private group (a
  group named after its owner with no other members: Debian's ``umask 002`` convention);
* none is writable by everyone, unless it is a sticky folder owned by root or by the current
  user, such as ``/tmp``: there nobody can rename or remove another's entry.

The walk costs one ``lstat`` per path component (about ten for ``~/.experiments/config.json``),
paid once per command.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import ConfigError
from ..worker.trust import account, group_name, private_group

MAX_LINKS = 40  # as the kernel: more symlinks than this on one path is a loop


class UntrustedConfig(ConfigError):
    """A config file that runs code could be changed by an untrusted account (exit code 2:
    the command does nothing)."""

    exit_code = 2


def writers(st: os.stat_result, trusted: frozenset[int]) -> tuple[str, str] | None:
    """Who besides the trusted accounts could change an entry with this ``lstat``, and the
    command that stops them; None when nobody could."""
    if st.st_uid not in trusted:
        return (f"{account(st.st_uid)} (its owner)",
                f"chown root {{entry}} (or chown {account(os.geteuid())})")
    if stat.S_ISLNK(st.st_mode):
        return None  # a symlink's own mode bits mean nothing
    sticky = stat.S_ISDIR(st.st_mode) and bool(st.st_mode & stat.S_ISVTX)
    if st.st_mode & stat.S_IWOTH and not (sticky and st.st_uid in (0, os.geteuid())):
        return "every user (it is world-writable)", "chmod o-w {entry}"
    if st.st_mode & stat.S_IWGRP and st.st_gid != 0 and not sticky and not private_group(
            st.st_gid, st.st_uid):
        return (f"every member of the group {group_name(st.st_gid)} (it is group-writable)",
                "chmod g-w {entry}")
    return None


def walk(path: Path) -> list[tuple[str, os.stat_result]]:
    """Every entry whose change would change what ``path`` reads: each folder descended into,
    each symlink met (then its target's components), the file itself; ``lstat`` of each."""
    met: list[tuple[str, os.stat_result]] = [("/", os.lstat("/"))]
    full = path if path.is_absolute() else Path.cwd() / path  # ".." stays: a symlink decides
    current, todo, links = "/", list(full.parts[1:]), 0
    while todo:
        name = todo.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        here = os.path.join(current, name)
        st = os.lstat(here)
        met.append((here, st))
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_LINKS:
                raise OSError(f"too many symlinks on the way to {path}")
            target = os.readlink(here)
            if target.startswith("/"):
                current = "/"
            todo[:0] = list(Path(target).parts[1:] if target.startswith("/")
                            else Path(target).parts)
            continue
        current = here
    return met


def check(path: Path, what: str, *, trust_owner: bool) -> None:
    """Refuse (:class:`UntrustedConfig`) a config file another account could change;
    ``trust_owner``: the file's own owner is trusted (a site file's maintainer)."""
    try:
        met = walk(path)
    except OSError as exc:
        raise UntrustedConfig(f"cannot check who may change {what} {path}: {exc}") from None
    trusted = {0, os.geteuid()}
    if trust_owner:
        trusted.add(os.stat(path).st_uid)
    for entry, st in met:
        who = writers(st, frozenset(trusted))
        if who is not None:
            raise UntrustedConfig(_refusal(path, what, entry, st, who))


def _refusal(path: Path, what: str, entry: str, st: os.stat_result,
             who: tuple[str, str]) -> str:
    """The one-line refusal: which entry, who could write it, and how to fix it."""
    kind = "symlink" if stat.S_ISLNK(st.st_mode) else (
        "folder" if stat.S_ISDIR(st.st_mode) else "file")
    details = f"{stat.filemode(st.st_mode)} {account(st.st_uid)}:{group_name(st.st_gid)}"
    return (f"{what} {path} could be changed by {who[0]}: {kind} {entry} is {details}. Its "
            "setup lines run in your jobs, so it is not used and nothing was done; fix: "
            f"{who[1].format(entry=entry)} (as its owner or root), or use a file that only "
            "root or its owner can change, in folders only they can write")
