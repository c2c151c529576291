"""What the worker records beside every result, and the build ids that link results together.

Each successful build gets a *build id* (``<UTC time>-<8 hex>``, e.g.
``20261129T143000Z-3f2a9c1d``), written in the artifact's ``.done`` marker. The worker writes a
``provenance`` block into ``.artifact.json`` when the build starts (beside ``params``, which holds
every field including defaults)::

    "provenance": {
      "format": 1,
      "build_id": "20261129T143000Z-3f2a9c1d",   # the same id the .done marker gets
      "started_at": "2026-11-29T14:30:00+00:00",
      "job": "1234_5", "attempt": 1, "host": "node3",
      "python": {"version": "3.11.7", "implementation": "CPython",
                 "executable": "/usr/bin/python3"},
      "code": {"snapshot": "9c0f...", "path": "<store>/9c0f.../code", "live_path": "/home/me/proj",
               "git": {"commit": "...", "branch": "main", "dirty": false, "diff_hash": null}},
      "dependencies": {"Pre/lr=0.1-a684276a02ca": "20261129T141000Z-0b1c2d3e"}
    }

``code.snapshot`` is None when snapshots are off (the tasks ran the live code in ``path``).
A dependency's id is read from its ``.done`` marker at build time; a marker written before build
ids existed gives None. Standard library only: the worker imports this on every task start.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from datetime import datetime, timezone

from .. import paths

TYPE_CHECKING = False  # the worker imports this module: keep typing out of every task's start
if TYPE_CHECKING:
    from typing import Any

    from .specs import SpecHeader

FORMAT = 1


def new_build_id() -> str:
    """A unique, time-sortable id for one build: ``20261129T143000Z-3f2a9c1d``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{os.urandom(4).hex()}"


_IMPLEMENTATIONS = {"cpython": "CPython", "pypy": "PyPy"}  # as platform names them


def read_json(path: str) -> dict[str, Any]:
    """A small JSON object written by a worker ({} when missing or unreadable)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError, RecursionError):  # RecursionError: nested past any record
        return {}
    return data if isinstance(data, dict) else {}


def build_id(root: str, relpath: str) -> str | None:
    """The build id in the artifact's done marker (None: not built, or built before build ids)."""
    found = read_json(paths.done_marker(root, relpath)).get("build_id")
    return found if isinstance(found, str) else None


def read_meta(root: str, relpath: str) -> dict[str, Any]:
    """The artifact's ``.artifact.json`` (empty when missing or unreadable)."""
    return read_json(paths.meta_file(root, relpath))


def collect(header: SpecHeader, root: str, deps: Iterable[str], *, build: str,
            job: str, attempt: int, started_at: str) -> dict[str, Any]:
    """The provenance block of one build (see the module docstring), from its job's spec."""
    snap = header.snapshot
    return {
        "format": FORMAT,
        "build_id": build,
        "started_at": started_at,
        "job": job,
        "attempt": attempt,
        "host": os.uname().nodename,
        "python": {"version": ".".join(str(n) for n in sys.version_info[:3]),
                   "implementation": _IMPLEMENTATIONS.get(sys.implementation.name,
                                                          sys.implementation.name),
                   "executable": sys.executable},
        "code": {"snapshot": snap.id if snap else None, "path": header.code_path,
                 "live_path": header.live_code_path or header.code_path,
                 "git": snap.git if snap else None},
        "dependencies": {d: build_id(root, d) for d in deps},
    }
