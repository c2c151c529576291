"""A relay killed, or the controller restarted, while the relay submits (issue 27, Done-when).

On the policed cluster as ``expuser1``, whose own unrelated held jobs fill 90 of the 100 the
QOS allows: 12 points and 12 sums go in waves of at most 9 tasks and a relay. The first relay
queues its successor first (``afterany`` on itself), then submits its wave; it is stopped
(``EXPERIMENTS_PAUSE_AT``) once Slurm has accepted its wave's first array and before the id
is recorded. Then either the whole relay job is SIGKILLed (``scancel --signal=KILL --full``), or
slurmctld is stopped and started again while the relay goes on submitting. Either way every
artifact ends built from exactly one job and no twin is left queued.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.policed_project import Factory, Project, built_once, two_tiers
from tests.support.slurm_cluster import FaultsCluster, PolicedCluster, policed_env

pytestmark = [pytest.mark.slurm, pytest.mark.long_wait]


@pytest.fixture
def stalled(make_project: Factory, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Project, Path, str]]:
    """The project launched, its first relay paused after its wave's first array was
    accepted: (project, the pause folder, the paused relay's job id)."""
    project = make_project(two_tiers(12, "sleep 5"), {})
    pause = project.dir.parent / "pause"
    pause.mkdir()
    pause.chmod(0o777)
    (pause / "go").touch()  # the launch by hand goes through the pause point at once
    held = project.cluster.run_as(
        project.user, "sbatch", "--parsable", "--hold", "--array=0-89", "-A", "physics",
        "-p", "short", "-t", "5", "-J", f"{project.name}-unrelated", "-o", "/dev/null",
        "--wrap", "true", cwd=str(project.dir), check=False)
    assert held.returncode == 0, held.stderr
    try:
        # the first relay passes after-submit with its successor (1), then the wave's 3
        # points (2): it stops there (a relay queuing no successor first would stop once
        # its points were recorded and its sums accepted, before queuing any relay)
        launched = project.cli("launch", time_limit="45", env=[
            "EXPERIMENTS_PAUSE_AT=after-submit:2", f"EXPERIMENTS_PAUSE_DIR={pause}"])
        assert launched.returncode == 0, launched.stdout + launched.stderr
        (pause / "go").unlink()  # the points of wave 1 still run: no relay has started
        (pause / "paused").unlink()
        yield project, pause, _paused_relay(project, pause)
    finally:
        (pause / "go").touch()
        project.cluster.run("scancel", held.stdout.strip().split(";")[0], check=False)


def _paused_relay(project: Project, pause: Path) -> str:
    """The id of the relay job running once one has paused (generous deadline)."""
    deadline = time.monotonic() + 180
    while not (pause / "paused").exists():
        assert time.monotonic() < deadline, f"no relay paused; queue: {project.live()}"
        time.sleep(0.5)
    running = [line.split("|")[0].split("_")[0] for line in project.cluster.run(
        "squeue", "-h", "-u", project.user, "-t", "R", "-o", "%i|%j", check=False
    ).stdout.splitlines() if line.endswith(".relay") and project.name in line]
    assert len(running) == 1, running
    return running[0]


def test_a_relay_killed_while_it_submits_leaves_every_artifact_built_once(
        stalled: tuple[Project, Path, str]) -> None:
    project, pause, relay = stalled
    project.cluster.run("scancel", "--signal=KILL", "--full", relay)
    (pause / "go").touch()  # later relays go through the pause point at once
    assert built_once(project, 24, deadline_s=300) <= 100


def test_the_controller_restarted_while_a_relay_submits_leaves_every_artifact_built_once(
        stalled: tuple[Project, Path, str], policed_cluster: PolicedCluster) -> None:
    project, pause, _ = stalled
    ctld = FaultsCluster(conf=policed_cluster.conf, env=policed_cluster.env,
                         max_array_size=policed_cluster.max_array_size,
                         script_env=policed_env())
    ctld.stop_ctld()
    try:
        (pause / "go").touch()  # the relay goes on: its next sbatch finds no controller
        time.sleep(3)
    finally:
        ctld.start()
    assert built_once(project, 24, deadline_s=300) <= 100
