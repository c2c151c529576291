"""The laptop's git state, carried into a launch that runs on the cluster (``--on``).

The tree the agent builds on the cluster is no git checkout, so the cluster cannot say which
commit it holds. The laptop computes it (commit, branch, dirty, diff hash: what a snapshot
records today) and the agent hands it to the verb in :data:`ENV`, naming the tree it belongs
to; the launch's snapshot of exactly that tree then records the laptop's state. An
environment variable rather than a file beside the tree: equal content can come from two
commits, and two launches of one tree must not read each other's.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from ..launching.snapshots import GitInfo, Snapshot

ENV = "EXPERIMENTS_SHIPPED_GIT"


def encode(tree: str, git: dict[str, Any] | None) -> str:
    """The value of :data:`ENV` for a verb run in ``tree`` (``git`` as the laptop sent it)."""
    return json.dumps({"tree": os.path.realpath(tree), "git": git})


def shipped(snapshot: Snapshot | None, code_path: str) -> Snapshot | None:
    """``snapshot`` with the laptop's git state when the agent shipped ``code_path``."""
    raw = os.environ.get(ENV)
    if snapshot is None or not raw:
        return snapshot
    try:
        data = json.loads(raw)
        if data["tree"] != os.path.realpath(code_path):
            return snapshot
        git = data["git"]
        info = None if git is None else GitInfo(
            commit=git["commit"], branch=git["branch"], dirty=bool(git["dirty"]),
            diff_hash=git["diff_hash"])
    except (ValueError, KeyError, TypeError):
        return snapshot  # not ours to interpret: record what the cluster knows
    return dataclasses.replace(snapshot, git=info)
