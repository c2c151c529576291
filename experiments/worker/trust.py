"""Whose done markers count: a ``.done`` counts as built only when a trusted account owns it.

In an artifact root shared with other users, anyone who can write there could plant a ``.done``
and make us skip (and build on) an artifact we never built. A marker therefore counts only when
it is owned by the current user, or by a user or group named in the configuration keys
``trusted_users`` / ``trusted_groups``. Standard library only: the worker uses it.

``configure`` sets the trusted ids for this process (a session does it from the config, as it
applies the umask); the worker passes the ids its job spec carries.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection

from .. import paths

_trusted: dict[str, frozenset[int]] = {"uids": frozenset(), "gids": frozenset()}


def configure(uids: Collection[int] = (), gids: Collection[int] = ()) -> None:
    """Trust markers owned by these users and groups too (besides the current user)."""
    _trusted["uids"], _trusted["gids"] = frozenset(uids), frozenset(gids)


def trusted_ids() -> tuple[list[int], list[int]]:
    """The configured (uids, gids), sorted, e.g. to hand to a worker in its spec."""
    return sorted(_trusted["uids"]), sorted(_trusted["gids"])


def owned_by_trusted(path: str, uids: Collection[int] | None = None,
                     gids: Collection[int] | None = None) -> bool:
    """True when ``path`` is a file (not a symlink: its owner could be anyone) and its owner
    (or group) is trusted."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    uids = _trusted["uids"] if uids is None else uids
    gids = _trusted["gids"] if gids is None else gids
    return st.st_uid == os.geteuid() or st.st_uid in uids or st.st_gid in gids


def marker_built(root: str, relpath: str, uids: Collection[int] | None = None,
                 gids: Collection[int] | None = None) -> bool:
    """Whether the artifact at ``relpath`` has a done marker from a trusted account."""
    return owned_by_trusted(paths.done_marker(root, relpath), uids, gids)


def account(uid: int) -> str:
    """``alice`` for a uid (``uid 1234`` when it has no name)."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def group_name(gid: int) -> str:
    """``lab`` for a gid (``gid 1234`` when it has no name)."""
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"gid {gid}"


def private_group(gid: int, owner: int) -> bool:
    """Whether ``gid`` is ``owner``'s own group: named after the owner, with no other member
    (the user-private groups of Debian's ``umask 002`` convention)."""
    import grp
    import pwd

    try:
        group, name = grp.getgrgid(gid), pwd.getpwuid(owner).pw_name
    except KeyError:
        return False
    return group.gr_name == name and set(group.gr_mem) <= {name}
