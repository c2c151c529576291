"""Past the submit limit, relays carry a launch in waves (issue 27, item 1).

On the policed cluster (QOS normal: MaxSubmitJobsPerUser=100; partition ``short``: MaxTime 1
hour), as ``expuser1``. The Done-when grid: with the QOS limit set to 10 and packing off (45
minutes asked per artifact), 100 points and 100 sums over them come from one ``launch`` in
waves of at most 9 tasks and a relay; every artifact is built exactly once, the user never has
more than 10 jobs queued, and no process of ours runs outside Slurm between waves. And a
refusal learned from Slurm part-way (no limits known, the user's own held jobs filling the
allowance) still ends with every artifact built once from one launch.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.policed_project import Factory, Project, built_once, queued, two_tiers
from tests.support.slurm_cluster import PolicedCluster

pytestmark = [pytest.mark.slurm, pytest.mark.long_wait]

PART_WAY = two_tiers(6, "sleep 10")  # the points still queued or running when the sums are sent

# The Done-when grid: 100 points and a sum over each (two tiers, 200 artifacts), 45
# minutes asked each so no two fit the partition's hour in one pack (packing off).
DONE_WHEN = two_tiers(100, "true")


def test_slurm_refusing_part_way_at_the_limit_leaves_the_rest_to_relays(
        make_project: Factory) -> None:
    """The user's own unrelated held jobs fill 90 of the 100 the QOS allows, and no limits
    are known (a launch this small reads none, #26): Slurm accepts the 6 points and refuses
    the 6 sums (QOSMaxSubmitJobPerUserLimit). The launch reads the limits, submits the 3 sums
    that fit beside a relay and exits 0; the relay submits the rest; each built once."""
    project = make_project(PART_WAY, {})
    held = project.cluster.run_as(
        project.user, "sbatch", "--parsable", "--hold", "--array=0-89", "-A", "physics",
        "-p", "short", "-t", "5", "-J", f"{project.name}-unrelated", "-o", "/dev/null",
        "--wrap", "true", cwd=str(project.dir), check=False)
    assert held.returncode == 0, held.stderr
    try:
        launched = project.cli("launch", time_limit="45")
        assert launched.returncode == 0, launched.stdout + launched.stderr
        said = " ".join(launched.stdout.split())
        assert "Slurm refused more: QOSMaxSubmitJobPerUserLimit" in said, said
        assert "Relay job" in said, said
        assert built_once(project, 12, deadline_s=300) <= 100
    finally:
        project.cluster.run("scancel", held.stdout.strip().split(";")[0], check=False)


@pytest.fixture
def qos_limit_10(policed_cluster: PolicedCluster) -> Iterator[None]:
    """QOS normal's MaxSubmitJobsPerUser set to 10 for the test (100 again afterwards)."""
    def limit(n: int) -> None:
        policed_cluster.run("sacctmgr", "-i", "modify", "qos", "where", "name=normal", "set",
                            f"MaxSubmitJobsPerUser={n}")
    limit(10)
    try:
        yield
    finally:
        limit(100)


def _outside_slurm(project: Project) -> list[str]:
    """Processes of the project's user running its experiment file (from its folder or a
    snapshot of it) with no slurmstepd above them."""
    found, folder = [], str(project.dir.parent)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid != pwd.getpwnam(project.user).pw_uid:
                continue
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "exp.py" not in cmd or (folder not in cmd
                                       and not os.readlink(proc / "cwd").startswith(folder)):
                continue
            pid, stepd = proc.name, False
            while pid not in ("0", "1") and not stepd:
                stat = Path(f"/proc/{pid}/stat").read_text()
                stepd = stat.split("(")[1].split(")")[0].startswith("slurmstepd")
                pid = stat.rsplit(")", 1)[1].split()[1]
            if not stepd:
                found.append(cmd)
        except (OSError, IndexError):
            continue
    return found


def test_done_when_200_artifacts_at_a_submit_limit_of_10_complete_from_one_launch(
        make_project: Factory, qos_limit_10: None) -> None:
    """Issue 27's Done-when: MaxSubmitJobsPerUser=10, packing off, a 200-artifact two-tier
    grid: one launch, every artifact built exactly once, never more than 10 of the user's
    jobs queued, nothing of ours running outside Slurm between waves; drylaunch and status
    say the waves."""
    # the limits are read for launches above 100 array tasks (#26), as such a site would
    project = make_project(DONE_WHEN, {"submit_limit_check_above": 100})
    dry = project.cli("drylaunch", time_limit="45")
    assert "Waves: " in dry.stdout and "a relay" in dry.stdout, dry.stdout + dry.stderr
    launched = project.cli("launch", time_limit="45")
    assert launched.returncode == 0, launched.stdout + launched.stderr
    said = " ".join(launched.stdout.split())
    assert "past your submit allowance, wave 1 of" in said and "Relay job" in said, said
    status = project.cli("status", time_limit="45")
    said = " ".join(status.stdout.split())
    assert status.returncode == 3 and "artifact(s) not yet submitted; relay job" in said, said
    outside: list[str] = []

    def watch() -> int:
        outside.extend(_outside_slurm(project))
        return queued(project)

    assert built_once(project, 200, deadline_s=600, sample=watch) <= 10
    assert outside == []
    status = project.cli("status", time_limit="45")
    assert status.returncode == 0, status.stdout + status.stderr
