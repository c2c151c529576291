"""The lab's habits: cancel asks first, capped lists say how to see all, --json for scripts,
piped output is never wrapped, the experiments home stays private."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from experiments.backends.fake import FakeBackend
from experiments.cli import context as cli_context
from experiments.cli import main as cli_main
from experiments.session import Session
from tests.support.cli import run_in_process as _run
from tests.support.experiments import FakeExecutor, fake_executor


def _ex(tmp_path: Path, n: int = 3) -> FakeExecutor:
    return fake_executor(tmp_path, "habits", n)


def test_bare_cancel_lists_and_needs_yes_without_a_terminal(
        tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    ex = _ex(tmp_path)
    assert _run(ex, "launch", capsys=capsys)[0] == 0
    code, out = _run(ex, "cancel", capsys=capsys)
    assert code == 2 and "100  nodes  tier 0  3 task(s)" in out and "--yes" in out
    assert fake.calls.get("cancel", 0) == 0
    code, out = _run(ex, "cancel", "nodes", capsys=capsys)  # named stages: no question
    assert code == 0 and "Cancelled 1 job(s): 100" in out


def test_bare_cancel_asks_on_a_terminal(tmp_path: Path, fake: FakeBackend,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ex = _ex(tmp_path)
    assert cli_main.run(ex, ["launch"]) == 0
    monkeypatch.setattr(cli_context, "can_ask", lambda: True)
    no = CliRunner().invoke(cli_main.make_cli(ex), ["cancel"], input="n\n")
    assert "Cancel these 1 job(s)?" in no.output and "Nothing cancelled" in no.output
    assert fake.calls.get("cancel", 0) == 0
    yes = CliRunner().invoke(cli_main.make_cli(ex), ["cancel"], input="y\n")
    assert "Cancelled 1 job(s): 100" in yes.output and fake.calls["cancel"] == 1


def test_capped_problem_list_says_how_to_see_all(tmp_path: Path, fake: FakeBackend,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    ex = _ex(tmp_path, 25)
    assert _run(ex, "launch", capsys=capsys)[0] == 0
    fake.fail("100", error="boom")
    code, out = _run(ex, "status", capsys=capsys)
    assert code == 1 and out.count("boom") == 20 and "5 more (`status -v` lists all)" in out
    code, out = _run(ex, "status", "-v", capsys=capsys)
    assert out.count("boom") == 25 and "more" not in out


def test_json_for_launch_status_history(tmp_path: Path, fake: FakeBackend,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ex = _ex(tmp_path)
    code, out = _run(ex, "launch", "--json", capsys=capsys)
    launched = json.loads(out)
    assert code == 0 and [j["job_id"] for j in launched["jobs"]] == ["100"]
    assert launched["jobs"][0]["tasks"] == 3 and launched["to_build"] == 3
    fake.finish("100", 0)
    fake.fail("100", 1, error="boom")
    code, out = _run(ex, "status", "--json", capsys=capsys)
    status = json.loads(out)
    assert code == 3 and status["outcome"] == "live"
    assert status["stages"][0]["counts"] == {"built": 1, "queued": 1, "failed": 1}
    assert status["stages"][0]["problems"][0]["detail"] == "boom"
    assert status["stages"][0]["problems"][0]["task"] == "100_1"
    code, out = _run(ex, "history", "--json", capsys=capsys)
    jobs = json.loads(out)["jobs"]
    assert code == 0 and jobs[0]["counts"] == {"built": 1, "failed": 1, "queued": 1}
    assert [t["state"] for t in jobs[0]["task_states"]] == ["built", "failed", "queued"]


def test_the_home_is_kept_private(tmp_path: Path, exp_home: Path) -> None:
    exp_home.mkdir(parents=True)
    os.chmod(exp_home, 0o755)
    Session.open(_ex(tmp_path))
    assert stat.S_IMODE(exp_home.stat().st_mode) == 0o700


def test_piped_output_is_not_wrapped(tmp_path: Path) -> None:
    """A real process with no terminal: a long failure reason stays on one line, a table row
    stays one line, and no terminal codes are written."""
    long = "echo " + "x" * 250 + " >/dev/null && exit 7"
    script = tmp_path / "exp.py"
    script.write_text(textwrap.dedent(f"""
        from dataclasses import dataclass
        from experiments import Artifact, ArtifactSet, LocalExecutor, Task

        @dataclass(frozen=True)
        class LongNameForAnArtifactClass(Artifact):
            a_rather_long_parameter_name: int
            def construct(self, builder: Task):
                builder.run_command({long!r})

        executor = LocalExecutor(project="piped", artifact_path={str(tmp_path / 'a')!r},
                                 code_path={str(tmp_path)!r})
        executor.stage("a_stage_with_a_long_name", ArtifactSet.from_product(
            cls=LongNameForAnArtifactClass, params={{"a_rather_long_parameter_name": [1]}}))
        if __name__ == "__main__":
            executor.auto_cli()
    """), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script), *args], capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)

    assert run("launch").returncode == 1
    status = run("status")
    assert status.returncode == 1
    assert any(f"command exited with code 7: {long}" in line and "cat L1_0" in line
               for line in status.stdout.splitlines()), status.stdout
    assert "\x1b[" not in status.stdout
    rows = [line for line in run("history").stdout.splitlines() if "L1" in line]
    assert len(rows) == 1 and "a_stage_with_a_long_name" in rows[0] and "1 failed" in rows[0]
    log = run("cat", "L1_0").stdout.splitlines()
    assert log[0].startswith("L1_0 failed")  # the task's recorded state, one unwrapped line
    header = next(line for line in log if line.startswith("==> L1_0 "))
    assert len(header) < 200  # a header, not a 100k rule
