"""What a tree shipped by ``--on`` carries into the verb run there: the laptop's git state and
the experiment file's lasting name.

The tree the agent builds on the cluster is no git checkout, so the cluster cannot say which
commit it holds. The laptop computes it (commit, branch, dirty, diff hash: what a snapshot
records today) and the agent hands it to the verb in :data:`ENV`, naming the tree it belongs
to; the launch's snapshot of exactly that tree then records the laptop's state. Each edit
makes a new tree, so the experiment file's path changes with it; jobs are owned by the file
that launched them (``cancel`` leaves other files' jobs alone), so the experiment run from a
tree is given the lasting name ``<code_root>/<project>/<file>`` instead. An environment
variable rather than a file beside the tree: equal content can come from two commits, and
two commands on one tree must not read each other's.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from ..experiment import Experiment
from .snapshots import GitInfo, Snapshot

ENV = "EXPERIMENTS_SHIPPED"


def encode(tree: str, source: str, git: dict[str, Any] | None) -> str:
    """The value of :data:`ENV` for a verb run in ``tree`` (``git`` as the laptop sent it)."""
    return json.dumps({"tree": os.path.realpath(tree), "source": source, "git": git})


def _ours(path: str) -> dict[str, Any] | None:
    """The shipment :data:`ENV` describes when ``path`` lies in its tree, else None."""
    raw = os.environ.get(ENV)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        tree = data["tree"]
        real = os.path.realpath(path)
    except (ValueError, KeyError, TypeError):
        return None  # not ours to interpret: go by what the cluster knows
    inside = isinstance(tree, str) and (real == tree or real.startswith(tree + os.sep))
    return data if inside and isinstance(data, dict) else None


def experiment(ex: Experiment) -> Experiment:
    """``ex`` owned by the lasting name of its file when it was run from a shipped tree."""
    data = _ours(ex.source_file) if ex.source_file else None
    source = data.get("source") if data else None
    return dataclasses.replace(ex, source_file=source) if isinstance(source, str) else ex


def snapshot(snap: Snapshot | None, code_path: str) -> Snapshot | None:
    """``snap`` with the laptop's git state when ``code_path`` is a shipped tree."""
    data = _ours(code_path)
    if snap is None or data is None or os.path.realpath(code_path) != data["tree"]:
        return snap
    git = data.get("git")
    try:
        info = None if git is None else GitInfo(
            commit=git["commit"], branch=git["branch"], dirty=bool(git["dirty"]),
            diff_hash=git["diff_hash"])
    except (KeyError, TypeError):
        return snap
    return dataclasses.replace(snap, git=info)
