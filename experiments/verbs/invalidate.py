"""``invalidate``: mark built artifacts for rebuilding, without deleting any result.

Two steps, so the CLI can ask before touching anything: :func:`select` finds the built artifacts
of the stages matching every ``--where key=value`` (and, with ``downstream``, every built artifact
depending on one of them, in any stage), and refuses when a live job holds one; :func:`apply`
moves their done markers aside to ``.done.invalidated-<UTC time>``. The next ``launch`` rebuilds
them; their files stay where they are until the rebuild overwrites them.

A ``--where`` value is parsed as JSON when it parses (``i=0`` is the int 0, ``flag=true`` the
bool, ``name=abc`` the string "abc"), and the key is a field name or a dotted path through
dependencies, dicts and list indexes (``base.lr=0.1``). Numbers compare by value (``lr=1``
matches ``1.0``); an enum matches its name or its value.
"""

from __future__ import annotations

import enum
import json
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ExperimentsError, SchedulerQueryError
from ..model.artifact import Artifact, walk
from ..model.identity import to_plain
from ..model.selection import SelectionError, parse_condition, unknown_key
from ..session import Session
from ..tracking.staleness import move_marker_aside, utc_stamp
from ..tracking.status import is_built, live_artifacts
from ..tracking.views import flatten_params
from .stale import owners

_MISSING = object()


@dataclass(frozen=True)
class Target:
    """One built artifact to mark for rebuilding, and why it was chosen."""

    artifact_id: str
    relpath: str
    stage: str
    why: str  # "selected" or "downstream of <relpath>"


@dataclass
class Invalidation:
    """What ``invalidate`` will touch (``select``) or touched (``apply``: ``moved`` is filled)."""

    targets: list[Target]
    root: str
    moved: dict[str, str] = field(default_factory=dict)  # relpath -> where its marker went


def parse_where(items: Sequence[str]) -> list[tuple[list[str], Any]]:
    """``["a.b=1", "name=abc"]`` → ``[(["a", "b"], 1), (["name"], "abc")]``."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not p for p in key.split(".")):
            raise SelectionError(f"--where {item!r}: write it as key=value, e.g. lr=0.1 or "
                                   "base.lr=0.1")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out.append((key.split("."), value))
    return out


def _lookup(obj: Any, path: Sequence[str]) -> Any:
    """The value at a dotted path through artifacts, dicts and lists; ``_MISSING`` if none."""
    for part in path:
        obj = to_plain(obj)
        if isinstance(obj, Artifact):
            names = {f for f in getattr(obj, "__dataclass_fields__", {})}
            obj = getattr(obj, part) if part in names else _MISSING
        elif isinstance(obj, dict):
            obj = obj.get(part, _MISSING)
        elif isinstance(obj, (list, tuple)) and part.lstrip("-").isdigit():
            i = int(part)
            obj = obj[i] if -len(obj) <= i < len(obj) else _MISSING
        else:
            return _MISSING
        if obj is _MISSING:
            return _MISSING
    return obj


def matches(actual: Any, wanted: Any) -> bool:
    """Whether a parameter value equals a ``--where`` value (see the module docstring)."""
    actual = to_plain(actual)
    if isinstance(actual, enum.Enum):
        return wanted in (actual.name, actual.value, f"{type(actual).__qualname__}.{actual.name}")
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return type(actual) is type(wanted) and actual == wanted
    if isinstance(actual, numbers.Real) and isinstance(wanted, numbers.Real):
        return float(actual) == float(wanted)
    if isinstance(actual, (list, tuple)) and isinstance(wanted, list):
        return len(actual) == len(wanted) and all(map(matches, actual, wanted))
    if isinstance(actual, dict) and isinstance(wanted, dict):
        return actual.keys() == wanted.keys() and all(matches(actual[k], wanted[k])
                                                      for k in actual)
    return bool(actual == wanted) and type(actual) is type(wanted)


def _chosen(arts: Sequence[Artifact], where: Sequence[tuple[list[str], Any]],
            items: Sequence[str], label: str) -> list[Artifact]:
    """The artifacts matching every condition; a key none of them has is the usage error
    every verb gives for a mistyped ``--where`` key (exit code 2, naming the typo)."""
    for (path, _), item in zip(where, items, strict=True):
        if all(_lookup(a, path) is _MISSING for a in arts):
            names = sorted({k for a in arts for k in flatten_params(a)})
            raise SelectionError(unknown_key(parse_condition(item), names, label))
    return [a for a in arts
            if all((v := _lookup(a, path)) is not _MISSING and matches(v, wanted)
                   for path, wanted in where)]


def _downstream(session: Session, chosen: dict[str, Artifact]) -> dict[str, tuple[Artifact, str]]:
    """Artifacts of every stage that depend (transitively) on a chosen one, with the cause."""
    everything = list(walk([a for arts in session.experiment.stages.values() for a in arts]))
    cause: dict[str, str] = {k: a.relpath for k, a in chosen.items()}
    out: dict[str, tuple[Artifact, str]] = {}
    changed = True
    while changed:  # to a fixed point: dependents of dependents
        changed = False
        for art in everything:
            if art.artifact_id in cause:
                continue
            hit = next((cause[d.artifact_id] for d in art.dependencies()
                        if d.artifact_id in cause), None)
            if hit is not None:
                cause[art.artifact_id] = hit
                changed = True
                out[art.artifact_id] = (art, hit)
    return out


def select(session: Session, stages: Sequence[str], *, where: Sequence[str] = (),
           downstream: bool = False) -> Invalidation:
    """The built artifacts ``invalidate`` would mark.

    Refuses (changing nothing) when a live job holds any chosen artifact, built or not: moving
    a marker while a job builds or rebuilds the artifact would race with it.
    """
    if not stages:
        raise ExperimentsError("name the stage(s) to invalidate, e.g. `invalidate train "
                               "--where lr=0.1`")
    ex = session.experiment
    arts = list({a.artifact_id: a for s in session.selected(stages)
                 for a in ex.stages[s]}.values())  # by id: artifacts may be unhashable
    owner = owners(session)
    label = ("stage " if len(stages) == 1 else "stages ") + ", ".join(map(repr, stages))
    chosen = {a.artifact_id: a for a in _chosen(arts, parse_where(where), where, label)}
    candidates = [Target(a.artifact_id, a.relpath, owner.get(k, ""), "selected")
                  for k, a in chosen.items()]
    if downstream:
        candidates += [Target(k, a.relpath, owner.get(k, ""), f"downstream of {cause}")
                       for k, (a, cause) in _downstream(session, chosen).items()]
    _refuse_live(session, candidates)
    return Invalidation([t for t in candidates if is_built(ex.artifact_path, t.relpath)],
                        ex.artifact_path)


def _refuse_live(session: Session, targets: Sequence[Target]) -> None:
    records = session.records()
    live = session.live(records)
    if live.unreachable:
        raise SchedulerQueryError(f"cannot invalidate: {live.warnings()[0]}; a live job may "
                                  "hold these artifacts. Try again when the scheduler answers")
    held = live_artifacts(records, live)
    busy = [f"{t.relpath} (job {held[t.artifact_id]})" for t in targets if t.artifact_id in held]
    if busy:
        raise ExperimentsError(f"cannot invalidate {len(busy)} artifact(s) a live job holds: "
                               f"{'; '.join(busy[:5])}{' …' if len(busy) > 5 else ''}. Wait "
                               "for the job or `cancel` it first; nothing was changed")


def apply(inv: Invalidation) -> Invalidation:
    """Move the done markers of ``inv.targets`` aside (one time stamp for all of them)."""
    stamp = utc_stamp()
    for t in inv.targets:
        moved = move_marker_aside(inv.root, t.relpath, stamp)
        if moved:
            inv.moved[t.relpath] = moved
    return inv


def invalidate(session: Session, stages: Sequence[str], *, where: Sequence[str] = (),
               downstream: bool = False) -> Invalidation:
    """``select`` then ``apply``: for scripts that need no confirmation."""
    return apply(select(session, stages, where=where, downstream=downstream))
