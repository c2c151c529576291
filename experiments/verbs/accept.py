"""``accept``: declare chosen stale results current, on purpose (the opposite of ``invalidate``).

Adding a field whose default reproduces the old behaviour (``solver: str = "solve"``) makes
every old result stale ("solver is new"), and a stale result changes the exit codes of
``status`` and ``wait``. When the user knows the old results still hold, ``accept`` says so,
result by result:

* :func:`select` finds the stale results of the stages matching every ``--where key=value``
  (chosen as ``table`` chooses; a mistyped key is the usual usage error);
* :func:`apply` appends an ``accepted`` entry to each one's ``.artifact.json`` — when, by
  whom, the user's reason, why it was stale, and what it is accepted for: today's parameters,
  the build ids of its dependencies now and the code snapshot compared with (if any) — and
  one line to the project's ``accepted.jsonl``, which ``history`` lists.

From then on the result is compared with what was accepted (``tracking.staleness``), so a
later change makes it stale again. ``invalidate`` undoes an acceptance: the result is rebuilt
with today's parameters and its new record has none. Results are never touched, only records.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import _atomic, paths
from ..errors import ExperimentsError
from ..model import selection
from ..model.artifact import Artifact, walk
from ..model.identity import encode_params
from ..session import Session
from ..tracking.staleness import Stale
from ..tracking.store import now_iso
from ..tracking.views import flatten_params
from ..worker import provenance
from .stale import finder, owners

DEFAULT_REASON = "accepted on purpose"


@dataclass
class Acceptance:
    """What ``accept`` will mark current (``select``) or marked (``apply``)."""

    targets: list[Stale]  # the chosen stale results, dependencies first
    artifacts: dict[str, Artifact]  # artifact id -> artifact, for ``apply``
    root: str
    code_id: str | None = None  # the code snapshot staleness compares with (None: not code)
    written: list[str] = field(default_factory=list)  # relpaths whose record got the entry
    failed: list[str] = field(default_factory=list)  # "<relpath>: why" for records not written
    still_stale: list[Stale] = field(default_factory=list)  # stale after apply (a stale dep)
    warnings: list[str] = field(default_factory=list)


def _chosen(session: Session, stages: Sequence[str], where: Sequence[str]) -> list[Artifact]:
    """The artifacts of ``stages`` matching ``where``, each once."""
    ex = session.experiment
    arts = list({a.artifact_id: a for s in session.selected(stages)
                 for a in ex.stages[s]}.values())
    conditions = selection.parse_where(list(where))
    params = [flatten_params(a) for a in arts]
    label = ("stage " if len(stages) == 1 else "stages ") + ", ".join(map(repr, stages))
    selection.check_keys(conditions, params, label)
    return [a for a, p in zip(arts, params, strict=True) if selection.matches(p, conditions)]


def select(session: Session, stages: Sequence[str], *, where: Sequence[str] = ()
           ) -> Acceptance:
    """The stale results of ``stages`` matching ``where``, dependencies before dependents."""
    if not stages:
        raise ExperimentsError("name the stage(s) whose stale results to accept, e.g. "
                               "`accept eval --where solver=solve`")
    chosen = _chosen(session, stages, where)
    found, warnings = finder(session)
    owner = owners(session)
    stale = [Stale(a.artifact_id, a.relpath, owner.get(a.artifact_id, ""), why)
             for a in chosen if (why := found.reason(a))]
    found.save()
    depth = {a.artifact_id: sum(1 for _ in walk([a])) for a in chosen}
    stale.sort(key=lambda s: depth[s.artifact_id])  # a dependency has fewer of its own
    return Acceptance(stale, {a.artifact_id: a for a in chosen}, session.experiment.artifact_path,
                      found.code_id, warnings=warnings)


def entry(root: str, art: Artifact, was: str, reason: str, code_id: str | None
          ) -> dict[str, Any]:
    """One ``accepted`` entry: when, who, why, and today's parameters, dependencies and code."""
    return {"at": now_iso(), "by": _user(), "reason": reason, "was": was,
            "params": encode_params(art),
            "dependencies": {d.relpath: provenance.build_id(root, d.relpath)
                             for d in art.dependencies()},
            "code": code_id}


def _user() -> str:
    """The login name of whoever accepts (``uid N`` when it cannot be told)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def apply(session: Session, acc: Acceptance, reason: str | None = None) -> Acceptance:
    """Write the ``accepted`` entries (dependencies first), log the acceptance for ``history``
    and say what is still stale afterwards (a dependency that was not accepted with it)."""
    note = reason or DEFAULT_REASON
    for target in acc.targets:
        path = paths.meta_file(acc.root, target.relpath)
        meta = provenance.read_json(path)
        if not meta:
            acc.failed.append(f"{target.relpath}: its record {path} cannot be read")
            continue
        old = meta.get("accepted")
        meta["accepted"] = [*(old if isinstance(old, list) else []),
                            entry(acc.root, acc.artifacts[target.artifact_id], target.reason,
                                  note, acc.code_id)]
        try:
            _atomic.write_json(path, meta)
        except OSError as exc:
            acc.failed.append(f"{target.relpath}: cannot write {path} ({exc.strerror or exc})")
            continue
        acc.written.append(target.relpath)
    if acc.written:
        _log(session, acc, note)
    found, _ = finder(session)
    acc.still_stale = [Stale(t.artifact_id, t.relpath, t.stage, why) for t in acc.targets
                       if (why := found.reason(acc.artifacts[t.artifact_id]))]
    found.save()
    return acc


def _log(session: Session, acc: Acceptance, note: str) -> None:
    """One line in the project's ``accepted.jsonl`` (``history`` lists them)."""
    stages = sorted({t.stage for t in acc.targets if t.relpath in acc.written})
    line = {"at": now_iso(), "by": _user(), "reason": note, "root": acc.root,
            "stages": stages, "artifacts": list(acc.written)}
    path = paths.accepted_log(session.store.home, session.experiment.project)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def accepted_log(session: Session) -> list[dict[str, Any]]:
    """Every acceptance of the project, oldest first (a torn last line is left out)."""
    path = paths.accepted_log(session.store.home, session.experiment.project)
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for text in lines:
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict):
            out.append(data)
    return out


def accept(session: Session, stages: Sequence[str], *, where: Sequence[str] = (),
           reason: str | None = None) -> Acceptance:
    """``select`` then ``apply``: for scripts that need no confirmation."""
    return apply(session, select(session, stages, where=where), reason)
