"""Results another account built in a shared artifact root, which this user does not trust.

A done marker counts only when a trusted account wrote it (:mod:`experiments.worker.trust`):
an artifact built by a lab-mate is *not started* here. Saying only that hides that the result
exists, and a rebuild fails where the lab-mate's folder is not writable. So ``status`` names
them: which artifacts, whose markers, and what to do (trust the account, or use a root of
one's own).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from .. import paths
from ..model.artifact import Artifact
from .markers import DoneIndex
from .outcomes import user_name


@dataclass(frozen=True)
class Untrusted:
    """One artifact with a done marker written by an account this user does not trust."""

    stage: str
    relpath: str
    owner: str  # the marker's owner ("bob", or "uid 1234")


def untrusted(stage: str, artifacts: Iterable[Artifact], done: DoneIndex) -> list[Untrusted]:
    """The artifacts of ``stage`` whose done marker exists but is not trusted (one listing per
    folder: an artifact without a folder costs nothing)."""
    out = []
    for art in artifacts:
        rel = art.relpath
        if done.has_folder(rel) and not done(rel) and done.exists(rel):
            try:
                owner = user_name(os.stat(paths.done_marker(done.root, rel)).st_uid)
            except OSError:
                continue
            out.append(Untrusted(stage, rel, owner))
    return out


def summary(found: Iterable[Untrusted]) -> str | None:
    """``3 result(s) built by bob count as not started here …``, or None."""
    owners: dict[str, int] = {}
    for u in found:
        owners[u.owner] = owners.get(u.owner, 0) + 1
    if not owners:
        return None
    who = ", ".join(f"{n} by {o}" for o, n in owners.items())
    return (f"{sum(owners.values())} result(s) built by other accounts ({who}) count as not "
            "started here: their done markers are not trusted. Add the account to "
            "trusted_users in config.json to count them; launching rebuilds them, which fails "
            "where their folders are not yours to write (or use an artifact root of your own)")
