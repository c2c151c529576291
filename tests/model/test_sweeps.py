"""Successive halving decided from outcomes alone (pure): rungs, promotions, ties, failures."""

from __future__ import annotations

from typing import Any

import pytest

from experiments import ArtifactSet
from experiments.errors import DefinitionError
from experiments.model.sets import Deferred, resolve_stages
from experiments.model.sweeps import SweepSpec
from tests.support.sweep import BUDGETS, CONFIGS, Train, World, drive, replay


def _sweep(**kw: Any) -> Any:
    trials = ArtifactSet(Train(*c) for c in CONFIGS)
    args: dict[str, Any] = {"budget": "epochs", "budgets": BUDGETS, "eta": 3,
                            "metric": "val_loss", "mode": "min"}
    return trials.successive_halving(**(args | kw))


def test_promotions_and_winner_equal_the_offline_replay() -> None:
    sweep, world = _sweep(), World()
    assert drive(sweep, world) == [27, 9, 3]  # best(1) is a trial of the last rung: built
    rungs = sweep.spec.rungs(world)
    expected = replay()
    for rung, configs in zip(rungs, expected, strict=True):
        assert sorted((t.x, t.y, t.z) for t in rung.trials) == sorted(configs)
    best = sweep.best(1).resolve(world)
    assert [(t.x, t.y, t.z, t.epochs) for t in best] == [(*expected[-1][0], 9)]
    assert len(world.built_ids) == 27 + 9 + 3
    assert sweep.spec.budget_spent_at_most() == 27 * 1 + 9 * 3 + 3 * 9


def test_an_undecided_rung_plans_nothing_further_and_best_waits() -> None:
    sweep, world = _sweep(), World()
    first = sweep.resolve(world)
    assert len(first) == 27 and sweep.best(2).resolve(world) is None
    world.run(first[:26])
    world.live_ids.add(first[26].artifact_id)
    assert len(sweep.resolve(world)) == 27  # a live trial keeps rung 0 open
    _, waiting = resolve_stages({"s": sweep, "f": sweep.best(1)}, world)
    assert waiting == ["s: rung 1 of 3 (budget 1)", "f: rung 1 of 3 (budget 1)"]


def test_failed_trials_are_never_promoted_never_rerun_and_never_block() -> None:
    sweep, world = _sweep(), World()
    winner = replay()[-1][0]
    fail = frozenset({(*winner, 1)})  # the eventual winner fails its first rung
    drive(sweep, world, fail)
    rungs = sweep.spec.rungs(world)
    assert [len(r.trials) for r in rungs] == [27, 9, 3]
    assert all((t.x, t.y, t.z) != winner for r in rungs[1:] for t in r.trials)
    assert rungs[0].failed and len(sweep.resolve(world)) == 26 + 9 + 3  # not planned again
    assert rungs == sweep.spec.rungs(World(set(world.built_ids), set(), set(world.failed_ids),
                                           dict(world.scores)))  # a pure function
    assert [tuple(r) for r in replay(failed=fail)] == [
        tuple((t.x, t.y, t.z) for t in r.trials) if r.index < 2 else
        tuple((t.x, t.y, t.z) for t in r.promoted or ()) for r in rungs]


def test_ties_go_to_the_configuration_listed_first_and_max_mode_ranks_descending() -> None:
    trials = ArtifactSet(Train(i, 0, 0) for i in range(6))
    sweep = trials.successive_halving(budget="epochs", budgets=[1, 2], eta=3,
                                      metric="m", mode="max")
    world = World()
    world.run(sweep.resolve(world))
    for t in sweep.resolve(world):
        world.scores[t.artifact_id] = {"m": 1.0 if t.x in (4, 2, 5) else 0.0}
    promoted = sweep.spec.rungs(world)[0].promoted
    assert promoted is not None and [t.x for t in promoted[:2]] == [2, 4]


def test_resume_fills_the_previous_rungs_trial_as_a_dependency() -> None:
    sweep, world = _sweep(resume="previous"), World()
    drive(sweep, world)
    last = sweep.spec.rungs(world)[-1].trials[0]
    assert last.previous is not None and last.previous.epochs == 3
    assert last.previous.previous.epochs == 1 and last.previous.previous.previous is None
    assert list(last.dependencies()) == [last.previous]


def test_a_missing_or_non_numeric_metric_is_not_promoted() -> None:
    trials = ArtifactSet(Train(i, 0, 0) for i in range(3))
    sweep = trials.successive_halving(budget="epochs", budgets=[1, 2], eta=2, metric="m")
    world = World()
    world.run(sweep.resolve(world))
    ids = [t.artifact_id for t in sweep.resolve(world)]
    world.scores = {ids[0]: {"m": "low"}, ids[1]: {"m": float("nan")}, ids[2]: {"m": 5}}
    assert [t.x for t in sweep.spec.rungs(world)[0].promoted or ()] == [2]


@pytest.mark.parametrize("kw, word", [({"budget": "nope"}, "'nope'"), ({"eta": 1}, "eta"),
                                      ({"mode": "best"}, "mode"), ({"budgets": []}, "budget")])
def test_a_sweep_that_cannot_run_is_refused(kw: dict[str, Any], word: str) -> None:
    with pytest.raises(DefinitionError, match=word):
        _sweep(**kw)


def test_deferred_map_waits_for_its_source() -> None:
    sweep, world = _sweep(), World()
    final = sweep.best(2).map(lambda t: Train(t.x, t.y, t.z, 100))
    assert isinstance(final, Deferred) and len(final) == 0 and final.resolve(world) is None
    drive(sweep, world)
    got = final.resolve(world)
    assert got is not None and [t.epochs for t in got] == [100, 100]


def test_the_spec_is_frozen_and_names_its_trials() -> None:
    spec = SweepSpec((Train(0, 0, 0),), "epochs", (1, 3))
    assert spec.trial(Train(0, 0, 0), 1) == Train(0, 0, 0, 3)
