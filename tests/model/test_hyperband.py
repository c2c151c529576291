"""Hyperband decided from outcomes alone (pure): bracket sizes, dealing, decisions, best."""

from __future__ import annotations

from typing import Any

import pytest

from experiments import ArtifactSet
from experiments.errors import DefinitionError
from experiments.model.hyperband import schedule
from experiments.model.sweep_summary import summarize
from tests.support.sweep import (
    CONFIGS,
    Train,
    World,
    drive,
    hyperband_brackets,
    replay_hyperband,
)


@pytest.mark.parametrize("r, big_r, eta", [(1, 27, 3), (1, 8, 2), (1, 9, 3), (3, 81, 3),
                                           (1, 10, 3), (1, 1, 3)])
def test_the_brackets_follow_the_paper(r: int, big_r: int, eta: int) -> None:
    got = schedule(r, big_r, eta)
    assert [(n, [float(b) for b in bs]) for n, bs in got] == [
        (n, [float(b) for b in bs]) for n, bs in hyperband_brackets(10 ** 6, r, big_r, eta)]
    assert all(bs[-1] == big_r for _, bs in got)  # every bracket ends at the largest budget


def test_the_textbook_schedule() -> None:
    assert schedule(1, 27, 3) == [(27, [1, 3, 9, 27]), (12, [3, 9, 27]), (6, [9, 27]),
                                  (4, [27])]
    assert [n for n, _ in schedule(1, 8, 2)] == [8, 6, 4, 4]


def _hyperband(n: int, **kw: Any) -> Any:
    trials = ArtifactSet(Train(*c) for c in CONFIGS[:n])
    args: dict[str, Any] = {"budget": "epochs", "min_budget": 1, "max_budget": 9, "eta": 3,
                            "metric": "val_loss"}
    return trials.hyperband(**(args | kw))


def _configs(arts: Any) -> list[tuple[int, int, int]]:
    return [(t.x, t.y, t.z) for t in arts]


@pytest.mark.parametrize("n", [17, 12])
def test_promotions_budget_and_best_equal_the_offline_replay(n: int) -> None:
    sweep, world = _hyperband(n), World()
    fail = frozenset({(*CONFIGS[1], 1), (*CONFIGS[10], 3)})
    drive(sweep, world, fail)
    brackets, ranked, at_most = replay_hyperband(CONFIGS[:n], 1, 9, 3, fail)
    assert len(sweep.spec.brackets) == len(brackets)  # 12: the last bracket is left empty
    for spec, expected in zip(sweep.spec.brackets, brackets, strict=True):
        rungs = spec.rungs(world)
        assert [sorted(_configs(r.trials)) for r in rungs] == [sorted(e) for e in expected]
    best = sweep.best(2).resolve(world)
    assert best is not None and _configs(best) == ranked[:2]
    summary = summarize("sweep", sweep.spec, world)
    assert summary.finished and summary.budget_at_most == at_most == (
        sweep.spec.budget_spent_at_most())
    ran = [t for t in (sweep.shown(world)) if world.built(t) or world.failed(t)]
    assert summary.budget_spent == sum(t.epochs for t in ran) == at_most  # every trial ran
    assert summary.best is not None and summary.best.relpath == best[0].relpath
    assert {summary.trials[t.artifact_id].decision for t in best} == {"final"}


def test_brackets_run_side_by_side_and_best_waits_for_all() -> None:
    sweep, world = _hyperband(17), World()
    first = sweep.resolve(world)
    assert sorted(t.epochs for t in first) == [1] * 9 + [3] * 5 + [9] * 3  # every rung 0
    world.run(first)
    assert sweep.best(1).resolve(world) is None  # brackets 1 and 2 have rungs to go
    assert sweep.waiting_on(world) == ("bracket 1: rung 2 of 3 (budget 3); "
                                       "bracket 2: rung 2 of 2 (budget 9)")
    assert "bracket 3" not in sweep.waiting_on(world)  # one rung: decided already


def test_a_set_larger_than_the_brackets_take_is_refused_naming_the_count() -> None:
    with pytest.raises(DefinitionError, match=r"take 17; pass the first 17"):
        _hyperband(18)
    with pytest.raises(DefinitionError, match="min_budget"):
        _hyperband(5, min_budget=10)
    with pytest.raises(DefinitionError, match="eta"):
        _hyperband(5, eta=1)


def test_drylaunch_text_names_each_brackets_rungs_and_the_most_it_spends() -> None:
    text = _hyperband(17).spec.describe()
    assert text.splitlines() == [
        "hyperband over 17 in 3 bracket(s) (eta 3, min val_loss), budget at most 78:",
        "  bracket 1: 9 → 3 → 1 trials at epochs 1, 3, 9 (budget at most 27)",
        "  bracket 2: 5 → 1 trials at epochs 3, 9 (budget at most 24)",
        "  bracket 3: 3 trials at epochs 9 (budget at most 27)"]
