"""One-off requirement overrides: ``launch --set KEY=VALUE`` and ``--set STAGE:KEY=VALUE``.

An override changes what one launch asks the scheduler for (a longer ``time`` after a
TIMEOUT, more ``mem`` after OUT_OF_MEMORY) without touching any artifact's identity: the
artifacts, their folders and their ids stay the same; only the jobs differ. It is merged last,
over the configuration's partition defaults and the artifact's own ``get_requirements()``, and
kept in each job's record (``JobRecord.overrides``) so history says which jobs ran with it.

A value is parsed as JSON when it parses (``cpus=4`` is the int 4, ``requeue=true`` the bool),
else taken as a string (``time=2:00:00``). Only scalars are accepted: requirements are scalars.
A stage-specific override wins over a global one for the same key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import PlanError
from ..resources import Resources, Scalar
from . import Group, Plan


@dataclass(frozen=True)
class Overrides:
    """Requirement overrides for every stage, and per stage."""

    everywhere: Mapping[str, Scalar] = field(default_factory=dict)
    per_stage: Mapping[str, Mapping[str, Scalar]] = field(default_factory=dict)

    def for_stage(self, stage: str) -> dict[str, Scalar]:
        """The overrides that apply to jobs of ``stage`` (the stage's own win)."""
        return {**self.everywhere, **self.per_stage.get(stage, {})}

    def __bool__(self) -> bool:
        return bool(self.everywhere) or any(self.per_stage.values())


def parse_value(text: str) -> Any:
    """JSON when it parses, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_overrides(texts: Sequence[str], stages: Iterable[str]) -> Overrides:
    """``["time=2:00:00", "train:mem=64"]`` → :class:`Overrides`; errors say what is wrong."""
    known = list(stages)
    everywhere: dict[str, Scalar] = {}
    per_stage: dict[str, dict[str, Scalar]] = {}
    for text in texts:
        target, sep, raw = text.partition("=")
        stage, colon, key = target.rpartition(":")
        if not sep or not key.strip() or (colon and not stage):
            raise PlanError(f"--set {text!r}: expected KEY=VALUE or STAGE:KEY=VALUE, e.g. "
                            "--set time=2:00:00 or --set train:mem=64")
        if colon and stage not in known:
            raise PlanError(f"--set {text!r}: unknown stage {stage!r}; stages are: "
                            f"{', '.join(known)}")
        value = parse_value(raw)
        if value is None or not isinstance(value, (str, int, float, bool)):
            raise PlanError(f"--set {text!r}: a requirement is a string, number or bool, not "
                            f"{type(value).__name__}")
        (per_stage.setdefault(stage, {}) if colon else everywhere)[key.strip()] = value
    return Overrides(everywhere, per_stage)


def apply_overrides(plan: Plan, overrides: Overrides,
                    resolve: Callable[[dict[str, Any], str], Resources]) -> Plan:
    """The plan with each group's requirements overridden and resolved again.

    Groups of one tier and stage that end up with the same resources are merged into one job
    (an override of ``time`` can make two groups identical).
    """
    if not overrides:
        return plan
    cache: dict[tuple[str, tuple[tuple[str, Scalar], ...]], Resources] = {}
    tiers = []
    for tier in plan.tiers:
        merged: dict[tuple[str, Resources], Group] = {}
        for group in tier:
            extra = overrides.for_stage(group.stage)
            res = group.resources
            if extra:
                asked = {**dict(res.requirements), **extra}
                key = (group.stage, tuple(sorted(asked.items())))
                if key not in cache:
                    where = (f"stage '{group.stage}' with --set "
                             + " ".join(f"{k}={v}" for k, v in extra.items()))
                    cache[key] = resolve(asked, where)
                res = cache[key]
            slot = (group.stage, res)
            if slot in merged:
                merged[slot] = replace(merged[slot], tasks=merged[slot].tasks + group.tasks)
            else:
                merged[slot] = replace(group, resources=res)
        tiers.append(tuple(merged.values()))
    return replace(plan, tiers=tuple(tiers))
