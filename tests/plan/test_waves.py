"""Waves (pure): the first wave takes tasks in dependency order up to the room left."""

from __future__ import annotations

import pytest

from experiments.plan import Group, Plan
from experiments.plan.model import new_task
from experiments.plan.waves import first_wave, waves_needed
from experiments.resources import Resources


def _group(stage: str, tier: int, n: int) -> Group:
    tasks = tuple(new_task(f"{stage}{i}", f"{stage}/{i}", stage, "C", (), (), (), None)
                  for i in range(n))
    return Group(stage, tier, Resources(requirements=()), tasks)


PLAN = Plan(("a", "b"), ((_group("a", 0, 5), _group("c", 0, 3)), (_group("b", 1, 4),)))


def test_a_plan_that_fits_is_the_wave() -> None:
    assert first_wave(PLAN, 12) is PLAN and waves_needed(12, 12) == 1


def test_the_first_wave_takes_whole_tiers_first_and_cuts_the_last_group() -> None:
    wave = first_wave(PLAN, 6)
    assert [(g.stage, len(g.tasks)) for g in wave.groups] == [("a", 5), ("c", 1)]
    assert len(wave.tiers) == 1  # nothing of tier 1: its dependencies are not all in it
    wave = first_wave(PLAN, 10)
    assert [(g.stage, g.tier, len(g.tasks)) for g in wave.groups] == [
        ("a", 0, 5), ("c", 0, 3), ("b", 1, 2)]
    assert wave.task_count == 10 and wave.stages == PLAN.stages


def test_waves_needed_rounds_up() -> None:
    assert waves_needed(200, 9) == 23 and waves_needed(0, 9) == 1


def test_a_wave_needs_room() -> None:
    with pytest.raises(ValueError):
        first_wave(PLAN, 0)
