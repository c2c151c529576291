"""Finding stale results for ``status``, ``drylaunch`` and ``launch --rebuild-stale``."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .. import paths
from ..errors import SnapshotError
from ..model.artifact import Artifact
from ..session import Session
from ..tracking.markers import DoneIndex
from ..tracking.stale_cache import VerdictCache
from ..tracking.staleness import Stale, StaleFinder
from .code_snapshots import current_id


def finder(session: Session, done: DoneIndex | None = None) -> tuple[StaleFinder, list[str]]:
    """A finder for the session's artifact root, comparing code when the config asks to;
    ``done`` answers "built?" for it (default: a stat per artifact)."""
    warnings: list[str] = []
    code_id = None
    if session.config.snapshots.stale_on_code_change:
        try:
            code_id = current_id(session)
        except SnapshotError as exc:
            warnings.append(f"cannot compare results with the current code: {exc}")
    root = session.experiment.artifact_path
    cache = VerdictCache(paths.stale_cache_file(session.store.home, session.experiment.project,
                                                root), root)
    return StaleFinder(root, code_id, done, cache), warnings


def owners(session: Session) -> dict[str, str]:
    """Artifact id → the first stage that lists it."""
    out: dict[str, str] = {}
    for name, arts in session.experiment.stages.items():
        for a in arts:
            out.setdefault(a.artifact_id, name)
    return out


def find_stale(session: Session, stages: Sequence[str] | None = None,
               *, with_deps: bool = True,
               done: DoneIndex | None = None) -> tuple[list[Stale], list[str]]:
    """Stale built artifacts of the stages (and, with ``with_deps``, their dependencies).

    ``done`` answers "built?" with one listing per folder (``status`` shares its own)."""
    ex = session.experiment
    found, warnings = finder(session, done)
    if _empty(ex.artifact_path):  # nothing built yet (a grid's first launch): nothing stale
        return [], warnings
    selected = session.selected(stages)
    roots: list[Artifact] = [a for s in selected for a in ex.stages[s]]
    owner: dict[str, str] | None = None  # made only when something is stale
    out: list[Stale] = []
    built = found.built
    for art in _each_once(roots, with_deps):
        why = found.reason(art) if built(art) else None  # most of a big grid: unbuilt
        if why:
            owner = owners(session) if owner is None else owner
            out.append(Stale(art.artifact_id, art.relpath, owner.get(art.artifact_id, ""), why))
    found.save()
    return out, warnings


def _empty(root: str) -> bool:
    """Whether the artifact root holds nothing at all (missing counts as empty): then no
    artifact has a folder, let alone a done marker, and a million need not be asked."""
    try:
        with os.scandir(root) as entries:
            return next(entries, None) is None
    except FileNotFoundError:
        return True
    except OSError:  # not a folder, not readable: ask each artifact, as before
        return False


def _each_once(roots: list[Artifact], with_deps: bool) -> list[Artifact]:
    """``roots`` (and with ``with_deps`` their transitive dependencies) once each by id, in
    the order :func:`~experiments.model.artifact.walk` gives (one pass, one set)."""
    seen: set[str] = set()
    out: list[Artifact] = []
    if not with_deps:
        for art in roots:
            if art.artifact_id not in seen:
                seen.add(art.artifact_id)
                out.append(art)
        return out
    stack = roots[:]
    while stack:
        art = stack.pop()
        aid = art.artifact_id
        if aid in seen:
            continue
        seen.add(aid)
        out.append(art)
        deps = art.dependencies()
        if deps:
            stack.extend(deps)
    return out
