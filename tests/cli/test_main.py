"""The CLI over the public verbs, on FakeBackend, through click's runner and the real ``run``."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from experiments import __version__
from experiments.backends.fake import FakeBackend
from experiments.cli import main as cli_main
from tests.support.cli import run_in_process as _run
from tests.support.experiments import FakeExecutor, fake_executor


@pytest.fixture
def ex(tmp_path: Path) -> FakeExecutor:
    return fake_executor(tmp_path, "clip")


def test_bare_command_helps_without_a_file() -> None:
    result = CliRunner().invoke(cli_main.cli, ["--help"])
    assert result.exit_code == 0
    for verb in ("launch", "drylaunch", "status", "history", "cat", "cancel"):
        assert verb in result.output
    assert "--file" in result.output
    version = CliRunner().invoke(cli_main.cli, ["--version"])
    assert version.exit_code == 0 and __version__ in version.output


def test_a_verb_without_a_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["status"]) == 2
    assert "experiments --file my_experiment.py" in capsys.readouterr().err


def test_launch_status_history_cancel(ex: FakeExecutor, fake: FakeBackend,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(ex, "drylaunch", capsys=capsys)
    assert code == 0 and "fake array of 3 task(s)" in out and "submits and records" in out
    code, out = _run(ex, "launch", capsys=capsys)
    assert code == 0 and "Submitted 1 job(s) for 3 artifact(s)" in out
    fake.finish("100", 0)
    fake.fail("100", 1, error="boom")
    code, out = _run(ex, "status", capsys=capsys)
    assert code == 3 and "boom" in out and "cat 100_1" in out  # 100_2 still queued
    code, out = _run(ex, "history", capsys=capsys)
    assert code == 0 and "100" in out and "1 built" in out and "1 failed" in out
    code, out = _run(ex, "cancel", "--yes", capsys=capsys)
    assert code == 0 and "Cancelled 1 job(s): 100" in out
    assert fake.calls["cancel"] == 1


def test_errors_are_one_line_and_exit_1(ex: FakeExecutor, fake: FakeBackend,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    fake.refuse_next("no such partition")
    code, out = _run(ex, "launch", capsys=capsys)
    assert code == 1 and "no such partition" in out and "Traceback" not in out
    code, out = _run(ex, "status", "nope", capsys=capsys)  # a usage error: 2, as documented
    assert code == 2 and "unknown stage 'nope'; stages are: nodes" in out


def test_cat_of_an_unknown_job_says_how_to_find_one(ex: FakeExecutor, fake: FakeBackend,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(ex, "cat", "42", capsys=capsys)
    assert code == 1 and "`history` lists the tracked jobs" in out
