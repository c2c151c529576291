"""A sweep rung by rung and trial by trial (pure): counts, decisions, best, budget spent."""

from __future__ import annotations

from typing import Any

from experiments import ArtifactSet
from experiments.model.sweep_summary import summarize, text_lines
from tests.support.sweep import BUDGETS, CONFIGS, Train, World, drive, loss, replay


def _sweep() -> Any:
    trials = ArtifactSet(Train(*c) for c in CONFIGS)
    return trials.successive_halving(budget="epochs", budgets=BUDGETS, eta=3,
                                      metric="val_loss")


def test_a_finished_sweep_counts_each_rungs_decisions_and_names_the_best() -> None:
    sweep, world = _sweep(), World()
    fail = frozenset({(0, 2, 2, 1)})
    drive(sweep, world, fail)
    got = summarize("sweep", sweep.spec, world)
    rows = [(r.rung, r.budget, r.trials, r.built, r.promoted, r.stopped, r.failed, r.not_run)
            for r in got.rungs]
    assert rows == [(1, 1, 27, 26, 9, 17, 1, 0), (2, 3, 9, 9, 3, 6, 0, 0),
                    (3, 9, 3, 3, 3, 0, 0, 0)]
    assert got.finished and got.budget_spent == 26 + 1 + 9 * 3 + 3 * 9 == got.budget_at_most
    x, y, z = replay(failed=fail)[-1][0]
    assert got.best is not None and got.best.value == loss(x, y, z, 9)
    assert got.best.relpath == Train(x, y, z, 9).relpath
    decisions = {(t.x, t.y, t.z, t.epochs): got.trials[t.artifact_id].decision
                 for r in sweep.spec.rungs(world) for t in r.trials}
    assert decisions[(0, 2, 2, 1)] == "failed"
    assert {c for c, d in decisions.items() if d == "promoted" and c[3] == 1} == {
        (*c, 1) for c in replay(failed=fail)[1]}
    assert sorted(d for c, d in decisions.items() if c[3] == 9) == ["final"] * 3


def test_an_open_sweep_shows_the_rung_under_way_and_the_rungs_not_reached() -> None:
    sweep, world = _sweep(), World()
    first = sweep.resolve(world)
    world.run(first[:20])
    world.live_ids.add(first[20].artifact_id)
    world.failed_ids.add(first[21].artifact_id)
    got = summarize("sweep", sweep.spec, world)
    assert not got.finished
    assert [(r.reached, r.decided, r.built, r.failed, r.not_run) for r in got.rungs] == [
        (True, False, 20, 1, 6), (False, False, 0, 0, 9), (False, False, 0, 0, 3)]
    assert got.trials[first[0].artifact_id].decision == "pending"
    assert got.trials[first[21].artifact_id].decision == "failed"
    text = "\n".join(text_lines(got))
    assert "rung 1 (epochs 1): 27 trial(s): 1 failed, 20 built, 6 not run yet" in text
    assert "rung 3 (epochs 9): 3 trial(s), not reached yet" in text and "best so far" in text


def test_the_json_form_has_the_documented_keys() -> None:
    sweep, world = _sweep(), World()
    drive(sweep, world)
    doc = summarize("sweep", sweep.spec, world).as_dict()
    assert set(doc) == {"stage", "kind", "metric", "mode", "eta", "budget", "budget_at_most",
                        "budget_spent", "finished", "rungs", "best", "brackets"}
    assert set(doc["rungs"][0]) == {"bracket", "rung", "budget", "trials", "built",
                                    "promoted", "stopped", "failed", "not_run", "decided",
                                    "reached", "last", "best"}
    assert doc["kind"] == "successive halving" and doc["brackets"] == 1
