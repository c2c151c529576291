"""A successive-halving sweep on the real cluster: one launch, then relays only.

27 configurations, budgets [1, 3, 9], eta 3, then a ``best(k=1)`` retraining stage. The
launching process submits rung 0 and a relay and exits; each relay (a job of ours) plans the
next rung from the artifact root. Promotions and the winner equal the offline replay.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from experiments.tracking.store import Store
from tests.support.cli import run_cli
from tests.support.slurm import cancel_all, my_jobs, wait_until_idle
from tests.support.sweep import (
    EXPERIMENT,
    built_trials,
    hyperband_brackets,
    replay,
    replay_hyperband,
    rung_sets,
    winner_of,
)

pytestmark = [pytest.mark.slurm, pytest.mark.long_wait]


def _records(project: str) -> list[dict[str, object]]:
    store = Store(Path(os.environ["EXPERIMENTS_HOME"]), project)
    return [r.to_dict() for stage in store.stages() for r in store.records(stage)]


def test_a_sweep_runs_rung_by_rung_through_relays_with_no_process_of_ours_between(
        tmp_path: Path, slurm_cluster: object) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT.format(executor="SlurmExecutor", extra=""))
    project = f"sw{uuid.uuid4().hex[:8]}"
    env = {"OUT": str(tmp_path), "PROJECT": project, "FAIL_TRIAL": "0,2,2,1",
           "TIMEOUT_TRIAL": "1,0,0,3"}  # rung 1's best runs into its 1-minute limit
    try:
        first = run_cli(script, "launch", env=env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "Relay job" in first.stdout, first.stdout
        at_exit = _records(project)  # the launcher has exited: rung 0 and one relay only
        assert sorted(len(r["tasks"]) for r in at_exit) == [1, 27], at_exit  # type: ignore
        wait_until_idle(project, timeout_s=400)
    finally:
        cancel_all(project)
    expected = replay(failed=frozenset({(0, 2, 2, 1), (1, 0, 0, 3)}))
    trials = built_trials(tmp_path / "a")
    assert len(trials) == 26 + 8 + 3, sorted(trials)  # each built exactly once
    by_rung = rung_sets(trials)
    assert by_rung[1] == set(expected[0]) - {(0, 2, 2)}
    assert by_rung[3] == set(expected[1]) - {(1, 0, 0)} and by_rung[9] == set(expected[2])
    assert (1, 0, 0) not in by_rung[9]  # timed out in rung 1: never promoted, never blocked
    ended = json.loads(run_cli(script, "table", "sweep", "--json", env=env).stdout)["rows"]
    assert [(r["rung"], r["decision"], r["state"]) for r in ended
            if (r["x"], r["y"], r["z"], r["epochs"]) == (1, 0, 0, 3)] == [(2, "failed", "failed")]
    rungs = json.loads(run_cli(script, "status", "--json", env=env).stdout)["sweep_rungs"]
    assert [(r["promoted"], r["stopped"], r["failed"]) for r in rungs[0]["rungs"]] == [
        (9, 17, 1), (3, 5, 1), (3, 0, 0)]
    assert rungs[0]["budget_spent"] == rungs[0]["budget_at_most"] == 81
    x, y, z = expected[-1][0]
    assert winner_of(tmp_path / "a").startswith(f"Train/x={x},y={y},z={z},epochs=9,")
    records = _records(project)
    relays = [r for r in records if str(r["name"]).endswith(".relay")]
    launcher, first_wave = at_exit[0]["pid"], {r["name"] for r in at_exit}
    later = [r for r in records if r["name"] not in first_wave]
    # rung 1 (two jobs: the slow trial asks another time limit), rung 2, relays 2-3, retraining
    assert len(relays) == 3 and len(later) == 3 + 2 + 1, [r["name"] for r in later]
    assert all(r["pid"] != launcher for r in later)  # later waves: submitted by relays
    again = run_cli(script, "launch", env=env)  # decided from the root: nothing reruns
    assert again.returncode == 0 and "Nothing to launch" in again.stdout, again.stdout
    assert "Relay job" not in again.stdout


def test_cancel_stops_the_relay_chain_and_a_relaunch_resumes_without_rebuilding(
        tmp_path: Path, slurm_cluster: object) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT.format(executor="SlurmExecutor", extra=""))
    project = f"sw{uuid.uuid4().hex[:8]}"
    env = {"OUT": str(tmp_path), "PROJECT": project}
    try:
        assert run_cli(script, "launch", env=env).returncode == 0
        stopped = run_cli(script, "cancel", "--yes", env=env)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        relay = next(r for r in _records(project) if str(r["name"]).endswith(".relay"))
        assert str(relay["job_id"]) in stopped.stdout  # the chain is a job of the project
        # nothing of ours is left to go on (cancelled tasks may still be COMPLETING a moment)
        assert not [row for row in my_jobs(project) if row.split("|")[2] != "COMPLETING"]
        wait_until_idle(project, timeout_s=60)
        again = run_cli(script, "launch", env=env)
        assert again.returncode == 0 and "Relay job" in again.stdout, again.stdout
        wait_until_idle(project, timeout_s=400)
    finally:
        cancel_all(project)
    assert len(built_trials(tmp_path / "a")) == 27 + 9 + 3
    runs: dict[str, int] = {}
    for r in _records(project):
        if r["state"] != "cancelled":
            for artifact_id, _ in r["tasks"]:  # type: ignore[attr-defined]
                runs[artifact_id] = runs.get(artifact_id, 0) + 1
    assert max(runs.values()) == 1  # nothing submitted twice
    x, y, z = replay()[-1][0]
    assert winner_of(tmp_path / "a").startswith(f"Train/x={x},y={y},z={z},epochs=9,")


def test_hyperband_brackets_run_side_by_side_through_relays(tmp_path: Path,
                                                             slurm_cluster: object) -> None:
    """17 configurations in 3 brackets (9 at epochs 1, 3, 9; 5 at 3, 9; 3 at 9): one launch,
    then relays; what is built and the retrained winner equal the offline replay."""
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT.format(executor="SlurmExecutor", extra=""))
    project = f"hb{uuid.uuid4().hex[:8]}"
    env = {"OUT": str(tmp_path), "PROJECT": project, "HYPERBAND": "1"}
    try:
        first = run_cli(script, "launch", env=env)
        assert first.returncode == 0 and "Relay job" in first.stdout, first.stdout
        assert sorted(len(r["tasks"]) for r in _records(project)) == [1, 17]  # type: ignore
        wait_until_idle(project, timeout_s=300)
    finally:
        cancel_all(project)
    configs = [(x, y, z) for x in range(3) for y in range(3) for z in range(3)][:17]
    brackets, ranked, _ = replay_hyperband(configs, 1, 9, 3)
    want = {(*c, int(b)) for rungs, (_, budgets) in zip(
        brackets, hyperband_brackets(17, 1, 9, 3), strict=True)
            for rung, b in zip(rungs, budgets, strict=True) for c in rung}
    assert sorted(built_trials(tmp_path / "a")) == sorted(want)  # each built once
    x, y, z = ranked[0]
    assert winner_of(tmp_path / "a").startswith(f"Train/x={x},y={y},z={z},epochs=9,")
    done = run_cli(script, "status", "--json", env=env)
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["sweep_rungs"][0]["budget_spent"] == 78  # the formula
