"""Packing on the real Slurm test cluster (issue 14): several artifacts per array task.

Each artifact of a pack keeps its own done marker, status file, log section and failure; a
pack requeued mid-way resumes with the artifacts it has not built; dependencies across packs
(packed and unpacked on either side) wait with ``afterany`` and the worker's own check.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.tracking.store import Store
from tests.support.cli import run_cli
from tests.support.slurm import cancel_all, count_calls, my_jobs, wait_until_idle, wrap_commands

pytestmark = pytest.mark.slurm

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

N = int(os.environ.get("N", "6"))
FAIL = {int(i) for i in os.environ.get("FAIL", "").split(",") if i}
SLEEP = os.environ.get("SLEEP", "0")

@dataclass(frozen=True)
class Up(Artifact):
    i: int
    def get_requirements(self):
        return {"time": "5:00"}
    def construct(self, builder: Task):
        code = 7 if self.i in FAIL else 0
        runs = f"$EXPERIMENTS_ARTIFACT_DIR/../../runs-{self.i}"
        builder.run_command(f"echo up-{self.i}-says-hello; echo {self.i} >> {runs}; "
                            f"sleep {SLEEP}; exit {code}")

@dataclass(frozen=True)
class Down(Artifact):
    up: Up
    def get_requirements(self):
        return {"time": "5:00"}
    def construct(self, builder: Task):
        builder.run_command("test -e " + builder.artifact_path + "/" + self.up.relpath
                            + "/.done && echo down-" + str(self.up.i))

ups = ArtifactSet.from_product(cls=Up, params={"i": list(range(N))})
downs = ups.map(lambda u: Down(up=u))
ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("up", ups)
ex.stage("down", downs)
if __name__ == "__main__":
    ex.auto_cli()
'''


class Run:
    """One experiment on the cluster: its files, environment and what to look at."""

    def __init__(self, tmp: Path) -> None:
        self.script = tmp / "exp.py"
        self.script.write_text(EXPERIMENT)
        self.out = tmp / "out"
        self.out.mkdir()
        self.project = f"p{uuid.uuid4().hex[:8]}"
        wrapped, self.calls = wrap_commands(tmp)
        self.env = {"OUT": str(self.out), "PROJECT": self.project, **wrapped}

    def cli(self, *args: str, ok: tuple[int, ...] = (0,), **env: str
            ) -> subprocess.CompletedProcess[str]:
        res = run_cli(self.script, *args, env={**self.env, **env})
        assert res.returncode in ok, res.stdout + res.stderr
        return res

    def states(self, cls: str) -> dict[object, str]:
        """The worker's state per artifact (an ``Up`` by its ``i``), from ``.status.json``."""
        out: dict[object, str] = {}
        for p in (self.out / cls).glob("*/.status.json"):
            name = p.parent.name  # Up/i=<i>-<hash>
            key = int(name.split("-")[0].removeprefix("i=")) if cls == "Up" else name
            out[key] = json.loads(p.read_text())["state"]
        return out

    def built(self, cls: str) -> int:
        return len(list((self.out / cls).glob("*/.done")))

    def jobs(self, stage: str) -> list[dict[str, object]]:
        home = Path(os.environ["EXPERIMENTS_HOME"])
        return [r.to_dict() for r in Store(home, self.project).records(stage)]

    def wait_for(self, predicate: object, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.3)
        raise AssertionError(f"not reached in {timeout_s} s; queue: {my_jobs(self.project)}")


@pytest.fixture
def run(tmp_path: Path, slurm_cluster: object) -> Iterator[Run]:
    r = Run(tmp_path)
    yield r
    cancel_all(r.project)


def _up_dir(run: Run, i: int) -> Path:
    (found,) = [p for p in (run.out / "Up").iterdir() if p.name.startswith(f"i={i}-")]
    return found


@pytest.mark.parametrize(("up_pack", "down_pack"), [(3, 1), (1, 4), (3, 4)])
def test_failure_isolation_and_dependencies_across_packs(run: Run, up_pack: int,
                                                         down_pack: int) -> None:
    sets = ["--set", f"up:pack={up_pack}", "--set", f"down:pack={down_pack}"]
    env = {"N": "6", "FAIL": "1"}
    dry = run.cli("drylaunch", *sets, **env).stdout
    if up_pack > 1:
        assert "6 artifact(s) in 2 task(s) of up to 3" in dry
        assert "pack: up to 3 artifact(s) per task, --time=00:15:00 per task" in dry
    if down_pack > 1:
        assert "6 artifact(s) in 2 task(s) of up to 4" in dry
    assert "task i waits for task i" not in dry  # nothing waits task by task on or as a pack
    run.cli("launch", *sets, **env)
    assert count_calls(run.calls, "sbatch") == 2
    up, down = run.jobs("up")[0], run.jobs("down")[0]
    assert down["depends_on"] == [up["job_id"]]
    if up_pack > 1:
        assert up["array_indices"] == [0, 0, 0, 1, 1, 1]
    wait_until_idle(run.project, 180)
    # each artifact on its own: the failure fails only itself, and only its dependent
    assert run.states("Up") == {0: "done", 1: "failed", 2: "done", 3: "done", 4: "done",
                                5: "done"}
    assert run.built("Up") == 5 and run.built("Down") == 5
    assert sorted(run.states("Down").values()) == ["dependency_failed"] + ["done"] * 5
    status = run.cli("status", ok=(1,), **env).stdout  # per artifact, not per pack
    counts = _status_counts(status)
    assert (counts["up"]["built"], counts["up"]["failed"], counts["up"]["total"]) == (
        "5", "1", "6"), status
    assert (counts["down"]["built"], counts["down"]["dep-failed"]) == ("5", "1"), status
    assert "command exited with code 7" in status


def _status_counts(text: str) -> dict[str, dict[str, str]]:
    """``status``'s first table: {stage: {column: cell}}."""
    lines = text.splitlines()
    names = [c.strip() for c in next(ln for ln in lines if ln.startswith("┃")).strip("┃")
             .split("┃")]
    out = {}
    for line in lines:
        cells = [c.strip() for c in line.strip("│").split("│")]
        if line.startswith("│") and len(cells) == len(names) and cells[0] not in out:
            out[cells[0]] = dict(zip(names, cells, strict=True))
    return out


def test_task_ids_are_slurms_and_one_artifact_of_a_pack_is_named_by_its_relpath(
        run: Run) -> None:
    """Issue 23 item 5: ``<job>_<i>`` is Slurm's task (a pack: every artifact it builds), and
    ``<job>_<i>/<relpath>`` one artifact of it, in ``cat``, ``status`` and ``logs``."""
    env = {"N": "4", "FAIL": "2"}
    run.cli("launch", "up", "--set", "pack=2", **env)
    wait_until_idle(run.project, 120)
    job = str(run.jobs("up")[0]["job_id"])
    rel = {i: _up_dir(run, i).relative_to(run.out).as_posix() for i in range(4)}
    table = run.cli("cat", job, ok=(0,), **env).stdout
    assert f"{job}_0" in table and f"{job}_1" in table  # Slurm's two tasks
    assert f"{job}_2" not in table and f"{job}_3" not in table  # no artifact positions
    pack = run.cli("cat", f"{job}_1", **env).stdout  # Slurm's task 1: artifacts 2 and 3
    assert f"{job}_1/{rel[2]} failed" in pack and f"{job}_1/{rel[3]} built" in pack, pack
    assert "up-2-says-hello" in pack and "up-3-says-hello" in pack, pack
    assert "up-1-says-hello" not in pack, pack
    one = run.cli("cat", f"{job}_0/{rel[1]}", **env).stdout
    assert "up-1-says-hello" in one and "artifact 2/2 of this task" in one
    assert "up-0-says-hello" not in one  # the other artifact of the same pack
    failed = run.cli("cat", f"{job}_1/{rel[2]}", **env).stdout
    assert "up-2-says-hello" in failed and "command exited with code 7" in failed
    assert "up-3-says-hello" not in failed
    gone = run.cli("cat", f"{job}_2", ok=(1, 2), **env)
    assert "has tasks 0-1" in gone.stdout + gone.stderr
    status = run.cli("status", ok=(1,), **env).stdout
    assert f"`cat {job}_1/{rel[2]}`" in status, status
    logs = run.cli("logs", rel[3], **env).stdout
    assert "up-3-says-hello" in logs and "up-2-says-hello" not in logs
    assert f"job {job}_1/{rel[3]}" in logs, logs
    hist = run.cli("history", **env).stdout
    assert "3 built" in hist and "1 failed" in hist


@pytest.mark.long_wait  # Slurm holds a requeued task back (BeginTime) ~2 minutes
def test_a_requeued_pack_resumes_with_the_artifacts_it_has_not_built(run: Run) -> None:
    env = {"N": "4", "SLEEP": "4"}
    run.cli("launch", "up", "--set", "pack=4", **env)
    job = str(run.jobs("up")[0]["job_id"])
    run.wait_for(lambda: run.built("Up") == 2, 90)  # two built, the third running
    subprocess.run(["scontrol", "requeue", f"{job}_0"], check=True, timeout=30,
                   capture_output=True)
    wait_until_idle(run.project, 240)
    assert run.built("Up") == 4
    runs = {i: (run.out / f"runs-{i}").read_text().split() for i in range(4)}
    assert runs[0] == ["0"] and runs[1] == ["1"]  # built once: skipped after the requeue
    assert runs[3] == ["3"]  # started only after the requeue
    log = Path(str(run.jobs("up")[0]["log_dir"])) / f"{job}_0.log"
    text = log.read_text()
    assert "restart 1" in text
    assert text.count("is already built; nothing to do") == 2
    status = json.loads((_up_dir(run, 3) / ".status.json").read_text())
    assert (status["state"], status["attempt"]) == ("done", 2)
    assert run.cli("status", "up", **env).returncode == 0


@pytest.mark.long_wait  # waits for a real one-minute time limit
def test_a_pack_cut_by_its_time_limit_is_finished_by_a_relaunch(run: Run) -> None:
    """``pack_time`` is the pack's own limit; at the TIMEOUT the running artifact is
    interrupted, those not started stay unbuilt, and a relaunch builds only those."""
    env = {"N": "4", "SLEEP": "40"}  # 160 s of work; Slurm ends it 60-90 s in
    run.cli("launch", "up", "--set", "pack=4", "--set", "pack_time=1", **env)
    job = str(run.jobs("up")[0]["job_id"])
    limit = subprocess.run(["squeue", "-h", "-j", job, "-o", "%l"], capture_output=True,
                           text=True, timeout=30).stdout.split()
    assert limit[:1] == ["1:00"], limit  # one minute for the whole pack, not 4 × 5:00
    wait_until_idle(run.project, 240)
    states = [run.states("Up").get(i) for i in range(4)]
    built = states.count("done")
    assert 1 <= built <= 3 and states == ["done"] * built + ["interrupted"] + [None] * (
        3 - built), states  # in order: built, the one cut, the ones never started
    status = run.cli("status", "up", ok=(1,), **env).stdout
    assert _status_counts(status)["up"]["built"] == str(built) and "TIMEOUT" in status
    assert "raise the `pack_time` requirement" in status  # the pack's limit, not `time`
    dry = run.cli("drylaunch", "up", "--set", "pack=4", **env).stdout
    assert f"{4 - built} artifact(s) in 1 task(s) of up to 4" in dry
    run.cli("launch", "up", "--set", "pack=4", **env)
    wait_until_idle(run.project, 240)
    assert run.built("Up") == 4
    runs = {i: len((run.out / f"runs-{i}").read_text().split()) for i in range(4)}
    assert runs == {i: 2 if i == built else 1 for i in range(4)}  # only the cut one twice


def test_artifacts_waiting_inside_a_running_pack_are_queued(run: Run) -> None:
    """Slurm says a pack's array task is RUNNING for every artifact in it; only the one the
    worker builds is running, the rest wait behind it (issue 24 item 8). ``launch`` counts
    array tasks, not artifacts."""
    env = {"N": "6", "SLEEP": "30"}
    launched = run.cli("launch", "up", "--set", "pack=3", **env).stdout
    assert "2 array task(s) for 6 artifact(s)" in launched and "6 tasks" not in launched
    assert "(2 array task(s))" in launched
    run.wait_for(lambda: list(run.states("Up").values()).count("running") == 2, 120)
    res = run.cli("status", "up", "--json", ok=(3,), **env)
    counts = json.loads(res.stdout)["stages"][0]["counts"]
    assert counts == {"running": 2, "queued": 4}, counts
