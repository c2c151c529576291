"""The local backend as a resource-aware scheduler, with real processes and no real GPUs.

The machine's capacity comes from config.json (``"local": {"cpus": 8, "gpus": 2}``), so these
tests pretend to have two GPUs anywhere. Each artifact's command appends
``start|end <i> <time> <CUDA_VISIBLE_DEVICES> <worker pid>`` to one file; the tests read the
spans back and check what ran at once and on which GPU.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.backends.local.machine import process_start
from experiments.tracking.store import Store
from tests.support.cli import run_cli
from tests.support.experiments import done_markers

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, LocalExecutor, Task

OUT = os.environ["OUT"]
SPANS = f"{OUT}/spans.txt"
NOW = "$(date +%s.%N)"

@dataclass(frozen=True)
class Job(Artifact):
    i: int
    gpus: int = 1
    sleep: float = 1.5
    time: str = ""
    crash: bool = False
    def get_requirements(self):
        reqs = {"gpus": self.gpus}
        if self.time:
            reqs["time"] = self.time
        return reqs
    def construct(self, builder: Task):
        me = f"{self.i} {NOW} ${{CUDA_VISIBLE_DEVICES}} $PPID"
        kill = f"echo shell {self.i} $$ >> {SPANS}; kill -9 $PPID; " if self.crash else ""
        builder.run_command(f'echo "start {me}" >> {SPANS}; {kill}sleep {self.sleep}; '
                            f'echo "end {me}" >> {SPANS}')

ex = LocalExecutor(project="sched", artifact_path=OUT, code_path=OUT,
                   workers=int(os.environ.get("WORKERS", "8")))
ex.stage("six", ArtifactSet.from_product(cls=Job, params={"i": list(range(6))}))
ex.stage("mixed", ArtifactSet([Job(10), Job(11, gpus=2), Job(12), Job(13), Job(14, gpus=2),
                               Job(15)]))
ex.stage("toobig", ArtifactSet([Job(20, gpus=3)]))
ex.stage("limited", ArtifactSet([Job(30, gpus=0, sleep=120, time="0:03")]))
ex.stage("crashy", ArtifactSet([Job(40, gpus=0, crash=True, sleep=40)] +
                               [Job(i, gpus=0, sleep=0) for i in range(41, 46)]))
SLOW = float(os.environ.get("SLOW_S", "3"))
ex.stage("slow", ArtifactSet([Job(i, gpus=0, sleep=SLOW) for i in range(50, 54)]))
if __name__ == "__main__":
    ex.auto_cli()
'''


def _setup(tmp_path: Path, local: dict[str, int] | None = None) -> tuple[Path, dict[str, str],
                                                                           Path]:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    out = tmp_path / "out"
    out.mkdir()
    home = Path(os.environ["EXPERIMENTS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    config = {"local": local if local is not None else {"cpus": 8, "gpus": 2}}
    (home / "config.json").write_text(json.dumps(config))
    return script, {"OUT": str(out)}, out


def _spans(out: Path) -> dict[int, tuple[float, float, str, str]]:
    """Artifact number → (start, end, CUDA_VISIBLE_DEVICES, worker pid)."""
    starts: dict[int, tuple[float, str, str]] = {}
    spans: dict[int, tuple[float, float, str, str]] = {}
    for line in (out / "spans.txt").read_text().splitlines():
        kind, i, at, *rest = line.split()
        devices, pid = (rest[0], rest[1]) if len(rest) == 2 else ("", rest[0])
        if kind == "start":
            starts[int(i)] = (float(at), devices, pid)
        else:
            start, dev, _ = starts[int(i)]
            spans[int(i)] = (start, float(at), dev, pid)
    return spans


def _overlapping(spans: dict[int, tuple[float, float, str, str]]) -> list[tuple[int, int]]:
    items = sorted(spans.items())
    return [(a, b) for n, (a, sa) in enumerate(items) for b, sb in items[n + 1:]
            if sa[0] < sb[1] and sb[0] < sa[1]]


def _max_concurrent(spans: dict[int, tuple[float, float, str, str]]) -> int:
    events = sorted([(s[0], 1) for s in spans.values()] + [(s[1], -1) for s in spans.values()])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def test_six_one_gpu_artifacts_on_two_configured_gpus(tmp_path: Path) -> None:
    """Capacity from config (gpus: 2 on a machine without any): never more than two at once,
    each with one index of its own, never shared with a task running at the same time."""
    script, env, out = _setup(tmp_path)
    res = run_cli(script, "launch", "six", env=env)
    assert res.returncode == 0, res.stderr + res.stdout
    spans = _spans(out)
    assert sorted(spans) == list(range(6))
    assert {s[2] for s in spans.values()} <= {"0", "1"}
    assert all(len(s[2].split(",")) == 1 for s in spans.values())
    assert _max_concurrent(spans) == 2  # both GPUs used, never a third task
    for a, b in _overlapping(spans):
        assert spans[a][2] != spans[b][2], f"artifacts {a} and {b} shared GPU {spans[a][2]}"
    status = json.loads(next(out.glob("Job/*/.status.json")).read_text())
    assert status["gpus"] in (["0"], ["1"])  # the assignment is recorded by the worker
    log = run_cli(script, "cat", "L1_0", env=env).stdout
    # and in the log's header, in words that cannot read as "no GPU" (issue 24 item 11)
    assert re.search(r"1 GPU\(s\): device ([01]) \(CUDA_VISIBLE_DEVICES=\1\)", log), log
    assert "gpus=0" not in log


def test_a_two_gpu_artifact_waits_for_two_free(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path)
    res = run_cli(script, "launch", "mixed", env=env)
    assert res.returncode == 0, res.stderr + res.stdout
    spans = _spans(out)
    assert sorted(spans) == [10, 11, 12, 13, 14, 15]
    for big in (11, 14):
        assert spans[big][2] == "0,1"
        others = [b if a == big else a for a, b in _overlapping(spans) if big in (a, b)]
        assert not others, f"2-GPU artifact {big} ran beside {others}"
    assert _max_concurrent(spans) == 2
    for a, b in _overlapping(spans):
        assert not set(spans[a][2].split(",")) & set(spans[b][2].split(","))


def test_an_impossible_requirement_is_refused_before_anything_runs(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path)
    dry = run_cli(script, "drylaunch", "toobig", env=env)
    assert dry.returncode == 2  # the experiment asks what this machine can never give
    assert "Job" in dry.stderr and "i=20" in dry.stderr, dry.stderr
    assert "asks for 3 GPUs" in dry.stderr and "2 GPUs" in dry.stderr
    assert "Traceback" not in dry.stderr
    res = run_cli(script, "launch", "toobig", env=env)
    assert res.returncode == 2 and "asks for 3 GPUs" in res.stderr
    assert not (out / "spans.txt").exists() and not list(out.rglob(".status.json"))
    ok = run_cli(script, "drylaunch", "six", env=env)  # what fits is described with capacity
    assert ok.returncode == 0 and "2 GPUs" in ok.stdout and "at most 2 at once" in ok.stdout


def test_a_time_limit_ends_a_sleeping_artifact_as_timeout(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path)
    began = time.monotonic()
    res = run_cli(script, "launch", "limited", env=env, timeout=120)
    took = time.monotonic() - began
    assert res.returncode == 1, res.stderr + res.stdout
    assert 3 <= took < 60  # the 120 s sleep did not run out
    assert not done_markers(out)
    status = run_cli(script, "status", env=env)
    assert "TIMEOUT" in status.stdout
    assert "at its time limit (time=0:03 requested)" in status.stdout, status.stdout  # as Slurm
    record = json.loads(next(out.glob("Job/*/.status.json")).read_text())
    assert record["state"] == "failed" and record["reason"] == "timeout"
    log = run_cli(script, "cat", "L1_0", env=env).stdout
    assert "TIMEOUT: time limit 0:00:03 reached; raise `time`" in log


def test_a_crashing_artifact_costs_only_itself_and_workers_are_reused(tmp_path: Path) -> None:
    """Artifact 40 kills its pooled worker process: it fails, its orphaned command is stopped,
    and the other five are built by long-lived workers: two slots and the one that replaced
    the dead process."""
    script, env, out = _setup(tmp_path)
    res = run_cli(script, "launch", "crashy", env={**env, "WORKERS": "2"})
    assert res.returncode == 1
    built = sorted(p.parent.name for p in done_markers(out))
    assert len(built) == 5 and not any(b.startswith("i=40") for b in built)
    lines = (out / "spans.txt").read_text().splitlines()
    shell = int(next(line.split()[-1] for line in lines if line.startswith("shell 40 ")))
    deadline = time.monotonic() + 30  # well before its 40 s sleep ends by itself
    while _running(shell) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(shell)  # the orphaned command was stopped, not left running
    lines = (out / "spans.txt").read_text().splitlines()
    pids = {line.split()[-1] for line in lines if line.startswith("end ")
            and line.split()[1] != "40"}
    dead = next(line.split()[-1] for line in lines if line.startswith("start 40 "))
    assert not [line for line in lines if line.startswith("end 40 ")]  # not left running
    assert dead not in pids and len(pids) <= 3  # five artifacts, at most three interpreters
    status = run_cli(script, "status", env=env)
    assert "worker process died" in status.stdout


def _running(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting to be reaped has ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _launcher(home: Path) -> tuple[int, int | None] | None:
    for job in Store(home, "sched").all_records():  # the store's journal, not a stale jobs.json
        if job.pid and job.job_id:
            return job.pid, job.pid_start
    return None


def _wait_for(predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {predicate}")


def test_a_detached_run_survives_its_session_and_is_cancelled_from_elsewhere(tmp_path: Path
                                                                             ) -> None:
    script, env, out = _setup(tmp_path)
    env["SLOW_S"] = "120"
    home = Path(os.environ["EXPERIMENTS_HOME"])
    cmd = f"{sys.executable} {script} launch slow --detach && sleep 600"
    terminal = subprocess.Popen(["/bin/bash", "-c", cmd], cwd=tmp_path, start_new_session=True,
                                env={**os.environ, **env}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: _launcher(home) is not None and (out / "spans.txt").exists())
    launcher = _launcher(home)
    assert launcher is not None
    pid, pid_start = launcher
    assert pid != terminal.pid and os.getsid(pid) != os.getsid(terminal.pid)
    os.killpg(terminal.pid, signal.SIGHUP)  # the terminal closes: its whole session ends
    os.killpg(terminal.pid, signal.SIGKILL)
    terminal.wait(10)
    assert "Running in the background" in (terminal.stdout.read() if terminal.stdout else "")
    time.sleep(0.5)
    assert process_start(pid) == pid_start, "the detached launcher died with the terminal"
    status = run_cli(script, "status", "slow", env=env)
    assert "running" in status.stdout, status.stdout
    assert list((home / "projects" / "sched" / "detached").glob("*.log"))

    cancel = run_cli(script, "cancel", "slow", env=env)  # another process, another session
    assert cancel.returncode == 0, cancel.stderr
    _wait_for(lambda: process_start(pid) != pid_start, timeout=60)
    jobs = [r.to_dict() for r in Store(home, "sched").records("slow")]
    assert jobs[0]["state"] == "cancelled"
    assert "cancelled" in set(jobs[0]["task_states"].values())
    assert not done_markers(out)


def test_two_detached_runs_never_build_an_artifact_twice(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path)
    home = Path(os.environ["EXPERIMENTS_HOME"])
    runs = [subprocess.Popen([sys.executable, str(script), "launch", "slow", "--detach"],
                             cwd=tmp_path, env={**os.environ, **env}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [r.communicate(timeout=120) for r in runs]
    codes = sorted(r.returncode for r in runs)
    assert codes[0] == 0, results
    refused = [err for r, (_, err) in zip(runs, results, strict=True) if r.returncode != 0]
    assert all("another launch of project 'sched' is running" in e for e in refused), results
    _wait_for(lambda: len(done_markers(out)) == 4, timeout=120)
    _wait_for(lambda: not any(_alive(p) for p in _launcher_pids(home)), timeout=60)
    again = run_cli(script, "launch", "slow", "--detach", env=env)  # all built: nothing to do
    assert again.returncode == 0 and "Nothing to launch" in again.stdout
    starts = [line.split()[1] for line in (out / "spans.txt").read_text().splitlines()
              if line.startswith("start")]
    assert sorted(starts) == ["50", "51", "52", "53"]  # each artifact ran exactly once


def _launcher_pids(home: Path) -> list[tuple[int | None, int | None]]:
    return [(j.pid, j.pid_start) for j in Store(home, "sched").all_records()]


def _alive(launcher: tuple[int, int | None]) -> bool:
    return process_start(launcher[0]) == launcher[1]


def test_placement_against_the_gpus_the_driver_lists(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With no ``local.gpus`` in the config and no ``*_VISIBLE_DEVICES``, the GPUs are the ones
    ``nvidia-smi -L`` lists (here 3 and 7: this machine has none, so a stand-in prints what a
    two-GPU node's driver prints), and no two overlapping artifacts share one."""
    tools = tmp_path / "driver"
    tools.mkdir()
    smi = tools / "nvidia-smi"
    smi.write_text("#!/bin/sh\n[ \"$1\" = -L ] || exit 9\n"
                   "echo 'GPU 3: NVIDIA A100-SXM4-40GB (UUID: GPU-3)'\n"
                   "echo 'GPU 7: NVIDIA A100-SXM4-40GB (UUID: GPU-7)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    for var in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    script, env, out = _setup(tmp_path, local={})
    res = run_cli(script, "launch", "six", env=env)
    assert res.returncode == 0, res.stderr
    spans = _spans(out)
    assert {s[2] for s in spans.values()} == {"3", "7"}  # both listed GPUs, and only those
    for a, b in _overlapping(spans):
        assert spans[a][2] != spans[b][2]  # side by side, each on its own GPU
