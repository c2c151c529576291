"""The worker building a pack (several artifacts at one array index), run as a process on
specs written here: each artifact on its own, a requeued pack resuming, log sections."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from experiments.model.task import Task, step_to_dict
from experiments.tracking import logfiles as logs
from experiments.worker import specs
from tests.support.worker import WORKER_TIMEOUT_S
from tests.support.worker import wait_for as _wait_for
from tests.support.worker import worker_env as _env


def _spec(tmp_path: Path, commands: Sequence[str], deps: Sequence[Sequence[str]] = (),
          indices: Sequence[int] | None = None) -> tuple[str, Path]:
    """A spec whose tasks run ``commands`` (task i: artifact ``M/a<i>``), packed by
    ``indices`` (default: all in one pack at index 0)."""
    root, code = tmp_path / "artifacts", tmp_path / "code"
    code.mkdir(exist_ok=True)
    tasks = []
    for i, command in enumerate(commands):
        b = Task(artifact_path=str(root), code_path=str(code), relpath=f"M/a{i}")
        b.run_command(command)
        tasks.append({"id": f"id{i}", "relpath": f"M/a{i}", "class": "M", "params": {"i": i},
                      "deps": list(deps[i]) if deps else [],
                      "steps": [step_to_dict(s) for s in b.steps]})
    placed, packs = specs.array_layout(list(indices or [0] * len(commands)))
    header = specs.SpecHeader("p", "s", "j", str(root), str(code), umask=0o022,
                              indices=placed, packs=packs)
    spec_dir = str(tmp_path / "spec")
    specs.write_spec(spec_dir, header, tasks)
    return spec_dir, root


def _argv(spec_dir: str, index: int) -> list[str]:
    return [sys.executable, "-m", "experiments.worker", spec_dir, str(index)]


def _run(spec_dir: str, index: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_argv(spec_dir, index), capture_output=True, text=True,
                          timeout=WORKER_TIMEOUT_S, env=_env(SLURM_ARRAY_JOB_ID="40",
                                                             SLURM_ARRAY_TASK_ID=str(index),
                                                             **env))


def _state(root: Path, i: int) -> str:
    return str(json.loads((root / f"M/a{i}/.status.json").read_text())["state"])


def test_a_failure_does_not_stop_the_rest_of_the_pack(tmp_path: Path) -> None:
    spec_dir, root = _spec(tmp_path, ["echo zero", "echo one; exit 7", "echo two"])
    res = _run(spec_dir)
    assert res.returncode == 1, res.stdout + res.stderr  # the pack reports its failure
    assert [_state(root, i) for i in range(3)] == ["done", "failed", "done"]
    assert (root / "M/a0/.done").exists() and (root / "M/a2/.done").exists()
    assert not (root / "M/a1/.done").exists()
    status = json.loads((root / "M/a1/.status.json").read_text())
    assert (status["job"], status["exit_code"]) == ("40_0", 7)
    for k in range(3):
        assert f"artifact {k + 1}/3 of this task: M/a{k}" in res.stdout


def test_a_missing_dependency_fails_only_its_own_artifact(tmp_path: Path) -> None:
    spec_dir, root = _spec(tmp_path, ["true", "true"], deps=[["Up/missing"], []])
    res = _run(spec_dir, EXPERIMENTS_EXIT_ZERO_ON_FAILURE="1")
    assert res.returncode == 0  # as every ordinary failure, when the backend asks for it
    assert [_state(root, i) for i in range(2)] == ["dependency_failed", "done"]


def test_only_the_pack_at_the_index_is_built(tmp_path: Path) -> None:
    spec_dir, root = _spec(tmp_path, ["true"] * 5, indices=[0, 0, 1, 1, 2])
    assert _run(spec_dir, 1).returncode == 0
    assert sorted(p.parent.name for p in root.glob("M/*/.done")) == ["a2", "a3"]


def test_a_pack_run_again_skips_what_it_built(tmp_path: Path) -> None:
    marker = tmp_path / "second-time"
    spec_dir, root = _spec(tmp_path, ["echo ran >> ../ran0", f"test -e {marker}", "true"])
    assert _run(spec_dir).returncode == 1
    marker.touch()
    res = _run(spec_dir, SLURM_RESTART_COUNT="1")  # what a requeued task sees
    assert res.returncode == 0, res.stdout
    assert [_state(root, i) for i in range(3)] == ["done", "done", "done"]
    assert (tmp_path / "ran0").read_text() == "ran\n"  # built once
    assert "M/a0 is already built; nothing to do" in res.stdout


def test_a_signal_stops_the_pack_before_its_next_artifact(tmp_path: Path) -> None:
    started = tmp_path / "started"
    spec_dir, root = _spec(tmp_path, [f"touch {started}; exec sleep 30", "true", "true"])
    proc = subprocess.Popen(_argv(spec_dir, 0), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    try:
        _wait_for(started)
        time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=WORKER_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert _state(root, 0) == "interrupted"
    assert not (root / "M/a1").exists() and not (root / "M/a2").exists()
    assert "2 later artifact(s) of this task not started" in out


# -- cat: an artifact's section of the pack's log ------------------------------------------------
def _pack_log(tmp_path: Path) -> Path:
    """A pack's log as the batch script and the worker write it: two attempts (a requeue)."""
    path = tmp_path / "40_0.log"
    path.write_text(
        "experiments: task 40_0 on n1 at 2026-01-01T00:00:00Z, restart 0\n"
        "[experiments t] artifact 1/2 of this task: M/a0\n"
        "a0 out\n"
        "[experiments t] artifact 2/2 of this task: M/a1\n"
        "a1 first\n"
        "experiments: task 40_0 on n1 at 2026-01-01T00:01:00Z, restart 1\n"
        "[experiments t] artifact 1/2 of this task: M/a0\n"
        "[experiments t] M/a0 is already built; nothing to do\n"
        "[experiments t] artifact 2/2 of this task: M/a1\n"
        "a1 second\n"
        "[experiments t] worker finished with exit code 0 after 0.1 s\n")
    return path


def test_sections_of_an_artifact_in_a_pack_log(tmp_path: Path) -> None:
    path = _pack_log(tmp_path)
    out = io.StringIO()
    logs.show_sections(path, out, logs.sections(path, "M/a1"))
    assert out.getvalue() == (
        "[experiments t] artifact 2/2 of this task: M/a1\na1 first\n"
        "[experiments t] artifact 2/2 of this task: M/a1\na1 second\n"
        "[experiments t] worker finished with exit code 0 after 0.1 s\n")
    first = io.StringIO()
    logs.show_sections(path, first, logs.sections(path, "M/a0"))
    assert "a1" not in first.getvalue() and first.getvalue().count("M/a0") == 3
    assert logs.sections(path, "M/other") == []


def test_a_long_section_shows_its_last_lines(tmp_path: Path) -> None:
    path = _pack_log(tmp_path)
    out = io.StringIO()
    logs.show_sections(path, out, logs.sections(path, "M/a1"), lines=2, chunk_bytes=5)
    assert out.getvalue() == (
        "[3 earlier line(s) of this artifact not shown; this is the last 2 line(s). "
        "Add --full to see all of it.]\n"
        "a1 second\n[experiments t] worker finished with exit code 0 after 0.1 s\n")
    data, cut = logs.section_bytes(path, "M/a1", 10)
    assert (data, cut) == (b"ter 0.1 s\n", True)
    head, cut = logs.section_bytes(path, "M/a1", 1000, from_end=False)
    assert head.startswith(b"[experiments t] artifact 2/2") and not cut
