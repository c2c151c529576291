"""Stale results: built artifacts whose recorded provenance no longer matches today.

A *built* artifact (it has a done marker) is stale when

* its recorded parameters (``params`` in ``.artifact.json``) differ from what the experiment
  gives today (a changed default, or a field added with a default);
* a dependency was rebuilt after it: the dependency's build id recorded at build time differs
  from the id in the dependency's done marker now (or the dependency is no longer built);
* a dependency is itself stale (it will be rebuilt, so this one must be too);
* optionally (config ``"stale_on_code_change": true``) it was built from another code snapshot
  than the code's content now.

A result accepted on purpose (``accept``: its ``.artifact.json`` gained an ``accepted`` entry
with today's parameters, dependency build ids and code snapshot at the time) is compared with
what was accepted instead of what it was built from. Results built before provenance was
recorded have nothing to compare and are never called stale. Nothing here writes:
:func:`move_marker_aside` is the one effect, used by ``invalidate`` and
``launch --rebuild-stale``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .. import paths
from ..model.artifact import Artifact
from ..model.identity import encode_params
from ..worker import provenance
from .markers import DoneIndex
from .stale_cache import VerdictCache, file_id, params_digest

_MAX_SHOWN = 3
_UNKNOWN = object()


@dataclass(frozen=True)
class Stale:
    """One stale artifact and why."""

    artifact_id: str
    relpath: str
    stage: str
    reason: str


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists), for comparing with a file."""
    return json.loads(json.dumps(value, ensure_ascii=False))


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def params_reason(recorded: Any, today: dict[str, Any]) -> str | None:
    """Why recorded parameters differ from today's (None when they agree or are unknown)."""
    diffs = param_diffs(recorded, today)
    return f"parameters differ from today's (a changed default?): {diffs}" if diffs else None


def param_diffs(recorded: Any, today: dict[str, Any]) -> str | None:
    """``num_examples was 500, now 4000; solver is new (now "solve")`` (the first few), or None
    when the recorded parameters agree with today's or are unknown."""
    if not isinstance(recorded, dict):
        return None
    now = _plain(today)
    if recorded == now:
        return None
    diffs = []
    for name in sorted(set(recorded) | set(now)):
        if name not in recorded:
            diffs.append(f"{name} is new (now {_short(now[name])})")
        elif name not in now:
            diffs.append(f"{name} was removed (was {_short(recorded[name])})")
        elif recorded[name] != now[name]:
            diffs.append(f"{name} was {_short(recorded[name])}, now {_short(now[name])}")
    more = f" and {len(diffs) - _MAX_SHOWN} more" if len(diffs) > _MAX_SHOWN else ""
    return "; ".join(diffs[:_MAX_SHOWN]) + more


class StaleFinder:
    """Decides staleness for built artifacts of one artifact root, each artifact once."""

    def __init__(self, root: str, code_id: str | None = None,
                 built: Callable[[str], bool] | None = None,
                 cache: VerdictCache | None = None) -> None:
        self.root = root
        self.code_id = code_id  # the code's snapshot id now; None: do not compare code
        self._memo: dict[str, str | None] = {}
        # relpath -> built? (a DoneIndex: one listing per folder, not a stat per artifact)
        self._built = built if built is not None else DoneIndex(root).exists
        self._ids: dict[str, str | None] = {}  # relpath -> build id of its done marker
        self._cache = cache  # verdicts of earlier commands, reused while nothing changed
        self._done_ids: dict[str, str | None] = {}  # relpath -> file id of its done marker

    def built(self, art: Artifact) -> bool:
        return self._built(art.relpath)

    def reason(self, art: Artifact) -> str | None:
        """Why ``art`` is stale, or None (also None when it is not built)."""
        memo = self._memo
        found = memo.get(art.artifact_id, _UNKNOWN)
        if found is not _UNKNOWN:
            return found  # type: ignore[return-value]
        if not self.built(art):  # not built: never stale, whatever its dependencies are
            memo[art.artifact_id] = None
            return None
        pending: list[tuple[Artifact, bool]] = [(art, False)]
        while pending:  # dependencies first, iteratively: chains may be long
            cur, expanded = pending.pop()
            key = cur.artifact_id
            if key in self._memo:
                continue
            if expanded:
                self._memo[key] = self._own_reason(cur)
                continue
            if not self.built(cur):  # not built: never stale, whatever its dependencies
                self._memo[key] = None
                continue
            pending.append((cur, True))
            pending.extend((d, False) for d in cur.dependencies()
                           if d.artifact_id not in self._memo)
        return self._memo[art.artifact_id]

    def _own_reason(self, art: Artifact) -> str | None:
        """Why a built ``art`` is stale (its dependencies' verdicts are in the memo): kept
        from an earlier command when nothing it depends on changed, else worked out."""
        key = self._cache_key(art) if self._cache is not None else None
        if self._cache is not None and key is not None:
            hit, verdict = self._cache.get(art.relpath, key)
            if hit:
                return verdict
        verdict = self._worked_out(art)
        if self._cache is not None and key is not None:
            self._cache.put(art.relpath, key, verdict)
        return verdict

    def _cache_key(self, art: Artifact) -> str | None:
        """Everything the verdict depends on (see :mod:`experiments.tracking.stale_cache`); None
        when the artifact's own files cannot be identified (then nothing is kept)."""
        done = file_id(paths.done_marker(self.root, art.relpath))
        meta = file_id(paths.meta_file(self.root, art.relpath))
        if done is None or meta is None:
            return None
        parts = [done, meta, params_digest(encode_params(art)), self.code_id or ""]
        for dep in art.dependencies():
            if dep.relpath not in self._done_ids:
                self._done_ids[dep.relpath] = file_id(paths.done_marker(self.root, dep.relpath))
            stale = "stale" if self._memo.get(dep.artifact_id) else ""
            parts.append(f"{dep.relpath}={self._done_ids[dep.relpath]}{stale}")
        return "|".join(parts)

    def save(self) -> None:
        """Keep the verdicts worked out for the next command."""
        if self._cache is not None:
            self._cache.save()

    def _worked_out(self, art: Artifact) -> str | None:
        meta = provenance.read_meta(self.root, art.relpath)
        accepted = last_acceptance(meta)
        found = params_reason((accepted or meta).get("params"), encode_params(art))
        if found:
            return found
        prov = meta.get("provenance")
        if not isinstance(prov, dict):
            return None  # built before provenance was recorded: nothing to compare
        consumed = (accepted or prov).get("dependencies") or {}
        for dep in art.dependencies():
            found = self._dep_reason(dep, consumed if isinstance(consumed, dict) else {})
            if found:
                return found
        code = (accepted or {}).get("code") or (prov.get("code") or {}).get("snapshot")
        if self.code_id and code and code != self.code_id:
            return f"built from code snapshot {code}; the code is now {self.code_id}"
        return None

    def _dep_reason(self, dep: Artifact, recorded: dict[str, Any]) -> str | None:
        if dep.relpath not in recorded:
            return None
        if not self.built(dep):
            return f"dependency {dep.relpath} is no longer built"
        now = self._build_id(dep.relpath)
        if recorded[dep.relpath] != now:
            return (f"dependency {dep.relpath} was rebuilt after it (consumed build "
                    f"{recorded[dep.relpath]}, now {now})")
        if self._memo.get(dep.artifact_id):
            return f"dependency {dep.relpath} is stale"
        return None

    def _build_id(self, relpath: str) -> str | None:
        """The build id in a dependency's done marker, read once per finder (a dependency
        shared by many artifacts, as in a join, is read once, not once per dependent)."""
        if relpath not in self._ids:
            self._ids[relpath] = provenance.build_id(self.root, relpath)
        return self._ids[relpath]

    def find(self, stage: str, artifacts: Iterable[Artifact]) -> list[Stale]:
        """The stale artifacts among ``artifacts`` (of ``stage``), in order."""
        out = []
        for art in artifacts:
            why = self.reason(art)
            if why:
                out.append(Stale(art.artifact_id, art.relpath, stage, why))
        return out


def last_acceptance(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The newest ``accepted`` entry of a result's record (see ``verbs.accept``), or None."""
    found = meta.get("accepted")
    if isinstance(found, list) and found and isinstance(found[-1], dict):
        return found[-1]
    return None


def utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def move_marker_aside(root: str, relpath: str, stamp: str) -> str | None:
    """Rename the done marker to ``.done.invalidated-<stamp>`` (results stay); None if not built.

    Returns the new path. An existing file of that name (twice in one second) gets a suffix.
    """
    src = paths.done_marker(root, relpath)
    dst = paths.invalidated_marker(root, relpath, stamp)
    n = 1
    while os.path.exists(dst):
        n += 1
        dst = paths.invalidated_marker(root, relpath, f"{stamp}-{n}")
    try:
        os.rename(src, dst)
    except FileNotFoundError:
        return None
    return dst
