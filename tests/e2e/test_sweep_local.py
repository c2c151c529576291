"""A successive-halving sweep on one machine (``--local``): one launch runs every rung and the
stage that depends on the winner, deciding rungs in process; promotions equal the replay."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.sweep import (
    EXPERIMENT,
    built_trials,
    hyperband_brackets,
    replay,
    replay_hyperband,
    rung_sets,
    winner_of,
)


def test_one_local_launch_runs_every_rung_and_retrains_the_replays_winner(tmp_path: Path
                                                                          ) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT.format(executor="LocalExecutor", extra=", workers=2"))
    env = {"OUT": str(tmp_path), "PROJECT": "sweeploc", "FAIL_TRIAL": "0,2,2,1",
           "TIMEOUT_TRIAL": "1,0,0,3", "TIMEOUT_LIMIT": "0:02"}  # rung 1's best times out
    dry = run_cli(script, "drylaunch", env=env)
    assert ("27 → 9 → 3 trials at epochs 1, 3, 9 (eta 3, min val_loss), budget at most 81"
            in dry.stdout), dry.stdout  # 27 x 1 + 9 x 3 + 3 x 9
    done = run_cli(script, "launch", env=env)
    assert done.returncode == 1, done.stdout + done.stderr  # a trial failed, as ever
    assert "Built 38 of 40" in done.stdout, done.stdout  # 27 + 9 + 3 trials, the retraining
    assert "failed (TIMEOUT)" in done.stdout, done.stdout  # the scheduler ended it
    expected = replay(failed=frozenset({(0, 2, 2, 1), (1, 0, 0, 3)}))
    trials = built_trials(tmp_path / "a")
    assert len(trials) == 26 + 8 + 3, sorted(trials)  # each built once; the failed ones not
    by_rung = rung_sets(trials)
    assert by_rung[1] == set(expected[0]) - {(0, 2, 2)}
    assert by_rung[3] == set(expected[1]) - {(1, 0, 0)} and by_rung[9] == set(expected[2])
    assert (1, 0, 0) not in expected[2]  # the timed-out trial was rung 1's best
    x, y, z = expected[-1][0]
    assert winner_of(tmp_path / "a").startswith(f"Train/x={x},y={y},z={z},epochs=9,")
    again = run_cli(script, "launch", env=env)  # decisions from the root: nothing reruns
    assert again.returncode == 0 and "Nothing to launch" in again.stdout, again.stdout
    assert len(built_trials(tmp_path / "a")) == 37
    _every_view_shows_the_sweep_rung_by_rung(script, env, expected)


def _every_view_shows_the_sweep_rung_by_rung(script: Path, env: dict[str, str],
                                             expected: list[list[tuple[int, int, int]]]
                                             ) -> None:
    """status (text and JSON), table (JSON and CSV) and the report, from the same decisions."""
    x, y, z = expected[-1][0]
    text = run_cli(script, "status", env=env).stdout
    assert ("Sweep sweep (successive halving, min val_loss, eta 3): epochs spent 81 of at most "
            "81; best val_loss") in text, text
    assert "rung 1 (epochs 1): 27 trial(s): 9 promoted, 17 stopped, 1 failed; best" in text
    assert "rung 2 (epochs 3): 9 trial(s): 3 promoted, 5 stopped, 1 failed; best" in text
    assert "rung 3 (epochs 9): 3 trial(s): 3 ranked for best(k); best" in text
    doc = json.loads(run_cli(script, "status", "--json", env=env).stdout)
    (sweep,) = doc["sweep_rungs"]
    assert [(r["trials"], r["promoted"], r["stopped"], r["failed"], r["not_run"])
            for r in sweep["rungs"]] == [(27, 9, 17, 1, 0), (9, 3, 5, 1, 0), (3, 3, 0, 0, 0)]
    assert sweep["finished"] and sweep["budget_spent"] == sweep["budget_at_most"] == 81
    assert sweep["best"]["relpath"].startswith(f"Train/x={x},y={y},z={z},epochs=9,")
    rows = json.loads(run_cli(script, "table", "sweep", "--json", env=env).stdout)["rows"]
    by = {(r["x"], r["y"], r["z"], r["epochs"]): (r["rung"], r["decision"]) for r in rows}
    assert len(by) == 27 + 9 + 3 and by[(0, 2, 2, 1)] == (1, "failed")
    assert by[(1, 0, 0, 3)] == (2, "failed")  # timed out: never promoted
    assert {c[:3] for c, d in by.items() if d == (1, "promoted")} == set(expected[1])
    assert {c[:3] for c, d in by.items() if d == (3, "final")} == set(expected[2])
    csv = run_cli(script, "table", "sweep", "--format", "csv", env=env).stdout
    assert csv.splitlines()[0].endswith(",val_loss,rung,decision,state,changed,folder")
    page = script.parent / "report.html"
    assert run_cli(script, "report", "-o", str(page), env=env).returncode == 0
    html = page.read_text()
    assert '<section id="sweeps">' in html and 'class="rungs"' in html
    assert html.count("<tr class=\"decided\">") == 3


def test_a_local_hyperband_decides_as_the_replay_and_retrains_its_best(tmp_path: Path
                                                                        ) -> None:
    """The same decisions as the relay path on FakeBackend (tests/verbs/test_relays.py):
    both equal the offline replay."""
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT.format(executor="LocalExecutor", extra=", workers=2"))
    env = {"OUT": str(tmp_path), "PROJECT": "hbloc", "HYPERBAND": "1",
           "FAIL_TRIAL": "0,0,1,1"}
    dry = run_cli(script, "drylaunch", env=env).stdout
    assert "Sweep sweep: hyperband over 17 in 3 bracket(s) (eta 3, min val_loss), budget at " \
           "most 78:" in dry, dry
    assert "bracket 2: 5 → 1 trials at epochs 3, 9 (budget at most 24)" in dry, dry
    done = run_cli(script, "launch", env=env)
    assert done.returncode == 1 and "Built" in done.stdout, done.stdout + done.stderr
    configs = [(x, y, z) for x in range(3) for y in range(3) for z in range(3)][:17]
    fails = frozenset({(0, 0, 1, 1)})
    brackets, ranked, _ = replay_hyperband(configs, 1, 9, 3, fails)
    want = {(*c, int(b)) for rungs, (_, budgets) in zip(
        brackets, hyperband_brackets(17, 1, 9, 3), strict=True)
            for rung, b in zip(rungs, budgets, strict=True) for c in rung} - fails
    assert set(built_trials(tmp_path / "a")) == want
    x, y, z = ranked[0]
    assert winner_of(tmp_path / "a").startswith(f"Train/x={x},y={y},z={z},epochs=9,")
    table = json.loads(run_cli(script, "table", "sweep", "--json", env=env).stdout)
    assert table["columns"][-6:] == ["bracket", "rung", "decision", "state", "changed",
                                     "folder"]
    assert sorted({r["bracket"] for r in table["rows"]}) == [1, 2, 3]
