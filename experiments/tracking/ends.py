"""Which artifact root a job builds into, and recording how its tasks ended.

Roots. A job holds its artifacts only for the root it builds into: a queued job writing into
``/scratch/smoke`` says nothing about ``/data/real``. Each record keeps its root
(``JobRecord.artifact_path``); records written before roots were kept are read from the job's
spec header when it is still there, else their root is *unknown*. A job of unknown root is
treated as possibly building into any root — never submitting twice is the safe side — and
every verb says so (:func:`unknown_root_warning`).

Endings. The first time a verb sees a task ended (built, failed, cancelled, dependency
failed), :func:`record_endings` writes what it saw into the job's ``ended`` map — the state
shown, the scheduler's words, the worker's account, when — in one ``update_many`` per stage,
and never rewrites it: later launches that rebuild the artifact leave the old job's story
intact.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ..worker import specs
from .markers import DoneIndex
from .status import Live, ended_entry
from .store import JobRecord, Store


@lru_cache(maxsize=4096)
def _spec_root(spec_dir: str) -> str | None:
    if not spec_dir:
        return None
    try:
        root = specs.read_header(spec_dir).artifact_path
    except (OSError, ValueError):  # gone, damaged, or of a newer version (SpecError)
        return None
    return os.path.normpath(root) if root else None


def root_of(record: JobRecord) -> str | None:
    """The artifact root of a job: recorded, else from its spec header, else None (unknown)."""
    if record.artifact_path:
        return os.path.normpath(record.artifact_path)
    return _spec_root(record.spec_dir)


def of_root(records: Sequence[JobRecord], root: str) -> list[JobRecord]:
    """The records that build (or, root unknown, may build) into ``root``."""
    want = os.path.normpath(root)
    return [r for r in records if root_of(r) in (want, None)]


def roots(records: Sequence[JobRecord]) -> list[str | None]:
    """The distinct roots of ``records`` in first-seen order (None: unknown)."""
    return list(dict.fromkeys(root_of(r) for r in records))


def root_text(root: str | None) -> str:
    return root if root is not None else "(unknown root: recorded before roots were kept)"


def unknown_root_warning(records: Sequence[JobRecord]) -> list[str]:
    """A warning naming jobs whose root is unknown (they are counted in every root)."""
    unknown = [r.job_id or r.name for r in records if root_of(r) is None]
    if not unknown:
        return []
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    return [f"job(s) {', '.join(unknown[:5])}{more} were recorded without their artifact root "
            "(an older version); they are counted as building into this root"]


def record_endings(store: Store, records: Sequence[JobRecord], live: Live,
                   default_root: str, done: DoneIndex | None = None) -> list[JobRecord]:
    """Record each task's end the first time it is seen; returns the records with the new
    entries (the others unchanged). One ``update_many`` per stage with news, none without.

    ``done`` (a listing of ``default_root`` taken *after* ``live`` was asked, so that a task
    the scheduler reports ended has its marker in it) spares reading the files of artifacts
    that have no folder."""
    news: dict[str, dict[str, dict[str, Any]]] = {}
    for rec in records:
        if not rec.job_id or len(rec.ended) >= len(rec.tasks):  # every end already recorded
            continue
        root = root_of(rec) or default_root
        index = done if done is not None and root == os.path.normpath(done.root) else None
        entries = {str(i): e for i in range(len(rec.tasks))
                   if (e := ended_entry(rec, i, live, root, index)) is not None}
        if entries:
            news.setdefault(rec.stage, {})[rec.name] = entries
    updated: dict[str, JobRecord] = {}
    for stage, by_name in news.items():
        current = {r.name: r for r in store.records(stage) if r.name in by_name}
        changes = {name: {"ended": {**entries, **current[name].ended}}  # first seen wins
                   for name, entries in by_name.items() if name in current}
        if changes:
            updated.update(store.update_many(stage, changes))
    return [updated.get(r.name, r) for r in records]
