"""Finding stale results for ``status``, ``drylaunch`` and ``launch --rebuild-stale``."""

from __future__ import annotations

from collections.abc import Sequence

from ..artifact import Artifact, walk
from ..errors import SnapshotError
from ..session import Session
from ..staleness import Stale, StaleFinder
from .code_snapshots import current_id


def finder(session: Session) -> tuple[StaleFinder, list[str]]:
    """A finder for the session's artifact root, comparing code when the config asks to."""
    warnings: list[str] = []
    code_id = None
    if session.config.snapshots.stale_on_code_change:
        try:
            code_id = current_id(session)
        except SnapshotError as exc:
            warnings.append(f"cannot compare results with the current code: {exc}")
    return StaleFinder(session.experiment.artifact_path, code_id), warnings


def owners(session: Session) -> dict[str, str]:
    """Artifact id → the first stage that lists it."""
    out: dict[str, str] = {}
    for name, arts in session.experiment.stages.items():
        for a in arts:
            out.setdefault(a.artifact_id, name)
    return out


def find_stale(session: Session, stages: Sequence[str] | None = None,
               *, with_deps: bool = True) -> tuple[list[Stale], list[str]]:
    """Stale built artifacts of the stages (and, with ``with_deps``, their dependencies).

    Unbuilt artifacts (most of a new grid) cost a look-up in a folder listing each; the stage
    owning each stale one is looked up only when something is stale.
    """
    ex = session.experiment
    roots: list[Artifact] = [a for s in session.selected(stages) for a in ex.stages[s]]
    found, warnings = finder(session)
    reason = found.reason
    stale = [(art, why) for art in (walk(roots) if with_deps else roots)
             if (why := reason(art)) is not None]
    if not stale:
        return [], warnings
    owner = owners(session)
    out: list[Stale] = []
    seen: set[str] = set()
    for art, why in stale:
        if art.artifact_id not in seen:
            seen.add(art.artifact_id)
            out.append(Stale(art.artifact_id, art.relpath, owner.get(art.artifact_id, ""), why))
    return out, warnings
