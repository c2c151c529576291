"""A successive-halving sweep on one machine (``--local``): one launch runs every rung and the
stage that depends on the winner, deciding rungs in process; promotions equal the replay."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import run_cli
from tests.support.sweep import EXPERIMENT, built_trials, replay, rung_sets, winner_of


def test_one_local_launch_runs_every_rung_and_retrains_the_replays_winner(tmp_path: Path
                                                                          ) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT.format(executor="LocalExecutor", extra=", workers=2"))
    env = {"OUT": str(tmp_path), "PROJECT": "sweeploc", "FAIL_TRIAL": "0,2,2,1"}
    dry = run_cli(script, "drylaunch", env=env)
    assert ("27 → 9 → 3 trials at epochs 1, 3, 9 (eta 3, min val_loss), budget at most 81"
            in dry.stdout), dry.stdout  # 27 x 1 + 9 x 3 + 3 x 9
    done = run_cli(script, "launch", env=env)
    assert done.returncode == 1, done.stdout + done.stderr  # a trial failed, as ever
    assert "Built 39 of 40" in done.stdout, done.stdout  # 27 + 9 + 3 trials, the retraining
    expected = replay(failed=frozenset({(0, 2, 2, 1)}))
    trials = built_trials(tmp_path / "a")
    assert len(trials) == 26 + 9 + 3, sorted(trials)  # each built once; the failed one not
    by_rung = rung_sets(trials)
    assert by_rung[1] == set(expected[0]) - {(0, 2, 2)}
    assert by_rung[3] == set(expected[1]) and by_rung[9] == set(expected[2])
    x, y, z = expected[-1][0]
    assert winner_of(tmp_path / "a").startswith(f"Train/x={x},y={y},z={z},epochs=9,")
    again = run_cli(script, "launch", env=env)  # decisions from the root: nothing reruns
    assert again.returncode == 0 and "Nothing to launch" in again.stdout, again.stdout
    assert len(built_trials(tmp_path / "a")) == 38
