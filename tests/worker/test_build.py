"""The worker, run as ``python -m experiments.worker`` on specs written here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact
from experiments.worker import specs
from tests.support.hostile import HOSTILE_NO_NUL
from tests.support.worker import REL, WORKER_TIMEOUT_S, Spec
from tests.support.worker import builder as _builder
from tests.support.worker import kill as _kill
from tests.support.worker import run as _run
from tests.support.worker import status_of as _status
from tests.support.worker import wait_for as _wait_for
from tests.support.worker import worker_env as _env
from tests.support.worker import write_spec as _write


def _start(spec: Spec) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "experiments.worker", spec.dir, "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())


# -- success --------------------------------------------------------------------------------
def test_success_writes_files_metadata_status_and_done_last(tmp_path: Path) -> None:
    b = _builder(tmp_path)
    b.create_file("out.txt", "hello")
    b.create_file("sub/data.bin", b"\x00\xff")
    b.run_command('test ! -e "$EXPERIMENTS_ARTIFACT_DIR/.done" && pwd > "$EXPERIMENTS_ARTIFACT_DIR'
                  '/pwd.txt" && echo "$EXPERIMENTS_ARTIFACT_PATH" > "$EXPERIMENTS_ARTIFACT_DIR/'
                  'root.txt" && echo command-output-marker')
    spec = _write(tmp_path, [b])
    res = _run(spec)
    assert res.returncode == 0, res.stdout + res.stderr
    art = spec.art()
    assert (art / "out.txt").read_text() == "hello"
    assert (art / "sub/data.bin").read_bytes() == b"\x00\xff"
    assert (art / "pwd.txt").read_text().strip() == str(spec.code)
    assert (art / "root.txt").read_text().strip() == str(spec.root)
    meta = json.loads((art / ".artifact.json").read_text())
    prov = meta.pop("provenance")
    assert meta == {
        "class": "Model", "params": {"x": 0}, "artifact_id": "id0", "relpath": REL,
        "project": "proj", "stage": "st"}
    status = _status(spec)
    assert (status["state"], status["exit_code"], status["artifact"]) == ("done", 0, REL)
    done = art / ".done"
    marker = json.loads(done.read_text())
    assert "finished_at" in marker
    assert marker["build_id"] == prov["build_id"]  # the build id links marker and provenance
    assert (prov["attempt"], prov["dependencies"], prov["code"]["snapshot"]) == (1, {}, None)
    assert prov["python"]["executable"] and prov["host"] and prov["job"]
    for name in ("out.txt", "sub/data.bin", "pwd.txt", ".artifact.json"):
        assert (art / name).stat().st_mtime_ns <= done.stat().st_mtime_ns
    assert "command-output-marker" in res.stdout
    assert f"built {REL}" in res.stdout
    assert [p.name for p in art.rglob("*.tmp-*")] == []


def test_index_from_slurm_array_task_id(tmp_path: Path) -> None:
    b0, b1 = _builder(tmp_path, "M/a"), _builder(tmp_path, "M/b")
    b0.create_file("f", "0")
    b1.create_file("f", "1")
    spec = _write(tmp_path, [b0, b1])
    res = _run(spec, None, SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_JOB_ID="555")
    assert res.returncode == 0, res.stderr
    assert (spec.root / "M/b/f").read_text() == "1"
    assert not (spec.root / "M/a").exists()
    assert _status(spec, "M/b")["job"] == "555_1"


def test_no_arguments_is_usage_error() -> None:
    res = subprocess.run([sys.executable, "-m", "experiments.worker"], capture_output=True,
                         text=True, timeout=WORKER_TIMEOUT_S, env=_env())
    assert res.returncode == 2
    assert "usage: python -m experiments.worker SPEC_DIR [INDEX]" in res.stderr


def test_hostile_kwargs_and_relpath_survive_the_worker(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Hostile(Artifact):
        values: tuple

    relpath = Hostile(values=tuple(HOSTILE_NO_NUL)).relpath
    b = _builder(tmp_path, relpath)
    b.run_command("printf '%s\\n' > \"$EXPERIMENTS_ARTIFACT_DIR/args.txt\"",
                  kwargs={f"k{i}": v for i, v in enumerate(HOSTILE_NO_NUL)})
    spec = _write(tmp_path, [b])
    res = _run(spec)
    assert res.returncode == 0, res.stdout
    expected = "".join(f"--k{i}={v}\n" for i, v in enumerate(HOSTILE_NO_NUL))
    assert (spec.art(relpath) / "args.txt").read_bytes().decode() == expected
    assert (spec.art(relpath) / ".done").exists()


def test_a_spec_of_the_release_before_versions_still_builds(tmp_path: Path) -> None:
    """A job queued before an upgrade keeps its old job.json: it is read as version 1."""
    b = _builder(tmp_path)
    b.create_file("out.txt", "old")
    spec = _write(tmp_path, [b])
    header = Path(spec.dir) / specs.HEADER
    old = json.loads(header.read_text())
    del old["version"]
    header.write_text(json.dumps(old))
    res = _run(spec)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (spec.art() / ".done").exists() and (spec.art() / "out.txt").read_text() == "old"


def test_a_spec_of_a_newer_version_is_refused_in_the_log(tmp_path: Path) -> None:
    b = _builder(tmp_path)
    b.create_file("out.txt", "new")
    spec = _write(tmp_path, [b])
    header = Path(spec.dir) / specs.HEADER
    header.write_text(json.dumps({**json.loads(header.read_text()), "version": 99}))
    res = _run(spec)
    assert res.returncode == 1
    assert f"FAILED: spec {header} has format version 99, written by a newer" in res.stdout
    assert not spec.art().exists()


# -- failures -------------------------------------------------------------------------------
def test_failing_command(tmp_path: Path) -> None:
    b = _builder(tmp_path)
    b.create_file("first.txt", "1")
    b.run_command("echo out-marker-123; echo err-marker-456 >&2; exit 7")
    b.run_command('touch "$EXPERIMENTS_ARTIFACT_DIR/never"')
    spec = _write(tmp_path, [b])
    res = _run(spec)
    assert res.returncode == 1
    art = spec.art()
    assert not (art / ".done").exists()
    assert not (art / "never").exists()
    assert (art / "first.txt").read_text() == "1"
    status = _status(spec)
    assert status["state"] == "failed"
    assert status["step"] == 2
    assert status["exit_code"] == 7
    assert "command exited with code 7" in status["error"]
    assert status["step_description"].startswith("run `echo out-marker-123")
    assert "out-marker-123" in res.stdout
    assert "err-marker-456" in res.stderr
    assert "FAILED at step 2" in res.stdout


def test_missing_code_path_fails_the_step(tmp_path: Path) -> None:
    b = _builder(tmp_path)
    b.run_command("true")
    spec = _write(tmp_path, [b])
    spec.code.rmdir()
    res = _run(spec)
    assert res.returncode == 1
    assert "code_path" in _status(spec)["error"] and "does not exist" in _status(spec)["error"]


def test_missing_dependency_runs_nothing(tmp_path: Path) -> None:
    b = _builder(tmp_path)
    b.create_file("out.txt", "x")
    spec = _write(tmp_path, [b], deps=["Dep/ok", "Dep/missing"])
    (spec.root / "Dep/ok").mkdir(parents=True)
    (spec.root / "Dep/ok/.done").write_text("{}")
    res = _run(spec)
    assert res.returncode == 3
    status = _status(spec)
    assert status["state"] == "dependency_failed"
    assert status["missing"] == ["Dep/missing"]
    assert "Dep/missing is not built" in status["error"]
    assert sorted(p.name for p in spec.art().iterdir()) == [".status.json"]
    (spec.root / "Dep/missing").mkdir(parents=True)
    (spec.root / "Dep/missing/.done").write_text("{}")
    assert _run(spec).returncode == 0
    assert (spec.art() / "out.txt").read_text() == "x"


def test_already_built_runs_nothing(tmp_path: Path) -> None:
    b = _builder(tmp_path)
    b.run_command('touch "$EXPERIMENTS_ARTIFACT_DIR/ran"')
    spec = _write(tmp_path, [b])
    spec.art().mkdir(parents=True)
    (spec.art() / ".done").write_text('{"old": true}')
    res = _run(spec)
    assert res.returncode == 0
    assert "already built" in res.stdout
    assert sorted(p.name for p in spec.art().iterdir()) == [".done"]
    assert (spec.art() / ".done").read_text() == '{"old": true}'


# -- signals and concurrency ----------------------------------------------------------------
def test_sigterm_during_command_interrupts(tmp_path: Path) -> None:
    b = _builder(tmp_path)
    b.run_command('echo $$ > "$EXPERIMENTS_ARTIFACT_DIR/pid"; exec sleep 30')
    spec = _write(tmp_path, [b])
    proc = _start(spec)
    try:
        _wait_for(spec.art() / "pid")
        time.sleep(0.05)
        cmd_pid = int((spec.art() / "pid").read_text())
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=WORKER_TIMEOUT_S)
    finally:
        _kill(proc)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM; no done marker written" in out
    assert not (spec.art() / ".done").exists()
    status = _status(spec)
    assert status["state"] == "interrupted"
    assert status["error"] == "interrupted by SIGTERM"
    with pytest.raises(ProcessLookupError):  # the command was stopped too
        os.kill(cmd_pid, 0)


def test_sigkill_while_writing_big_file_leaves_no_partial_file(tmp_path: Path) -> None:
    size = 48 * 1024 * 1024
    b = _builder(tmp_path)
    b.create_file("big.bin", b"\xab" * size)
    b.run_command("sleep 30")
    spec = _write(tmp_path, [b])
    art = spec.art()
    proc = _start(spec)
    seen_tmp = False
    try:
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            names = os.listdir(art) if art.is_dir() else []
            if any(n.startswith("big.bin") for n in names):
                seen_tmp = any(n.startswith("big.bin.tmp-") for n in names)
                break
        proc.kill()
    finally:
        _kill(proc)
    assert proc.returncode == -signal.SIGKILL
    assert seen_tmp, "the big file was not written through a temporary file"
    final = art / "big.bin"
    assert not final.exists() or final.stat().st_size == size
    assert not (art / ".done").exists()


def test_second_worker_on_same_artifact_is_busy(tmp_path: Path) -> None:
    b = _builder(tmp_path)
    b.run_command('touch "$EXPERIMENTS_ARTIFACT_DIR/started"; sleep 30')
    spec = _write(tmp_path, [b])
    first = _start(spec)
    try:
        _wait_for(spec.art() / "started")
        second = _run(spec, EXPERIMENTS_BUSY_WAIT_S="0")  # may not wait: busy at once
        assert second.returncode == 75
        assert f"another worker is building {REL}" in second.stdout
        assert _status(spec)["state"] == "running"
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=WORKER_TIMEOUT_S)
    finally:
        _kill(first)
    assert first.returncode == 128 + signal.SIGTERM
    assert not (spec.art() / ".done").exists()


def _second_while_first_builds(tmp_path: Path, then: str
                                ) -> tuple[Spec, subprocess.CompletedProcess[str]]:
    """A worker started on an artifact whose first worker is still building it (that build
    runs ``then`` after it has started); the spec and the second worker's run."""
    b = _builder(tmp_path)
    b.run_command(f'touch "$EXPERIMENTS_ARTIFACT_DIR/started"; {then}')
    spec = _write(tmp_path, [b])
    first = _start(spec)
    try:
        _wait_for(spec.art() / "started")
        second = _run(spec, EXPERIMENTS_JOB="second")
        first.communicate(timeout=WORKER_TIMEOUT_S)
    finally:
        _kill(first)
    return spec, second


def test_a_busy_artifact_is_waited_for_and_reported_built_by_the_other(tmp_path: Path) -> None:
    spec, second = _second_while_first_builds(tmp_path, "sleep 2")
    assert second.returncode == 0, second.stdout
    assert "waiting up to" in second.stdout and "was built by" in second.stdout
    assert _status(spec)["state"] == "done" and _status(spec)["job"] != "second"


def test_a_busy_artifact_whose_build_fails_fails_here_too(tmp_path: Path) -> None:
    spec, second = _second_while_first_builds(tmp_path, "sleep 2; exit 4")
    assert second.returncode == 1 and "failed" in second.stdout, second.stdout
    assert not (spec.art() / ".done").exists()
    assert _status(spec)["state"] == "failed" and _status(spec)["exit_code"] == 4


def test_command_that_shrugs_off_sigterm_and_exits_0_is_not_built(tmp_path: Path) -> None:
    """Slurm signals every process of a cancelled job: a shell that carries on after its killed
    child and exits 0 must not turn the interruption into a build."""
    b = _builder(tmp_path)
    b.run_command('trap "" TERM; touch "$EXPERIMENTS_ARTIFACT_DIR/started"; sleep 2; echo ok')
    spec = _write(tmp_path, [b])
    proc = _start(spec)
    try:
        _wait_for(spec.art() / "started")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=WORKER_TIMEOUT_S)
    finally:
        _kill(proc)
    assert "ok" in out  # the command really finished with exit code 0
    assert proc.returncode == 128 + signal.SIGTERM
    assert not (spec.art() / ".done").exists()
    assert _status(spec)["state"] == "interrupted"
