"""``wait`` and the exit codes it shares with ``status``, on FakeBackend (no scheduler)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from experiments.backends.fake import FakeBackend
from experiments.cli import main as cli_main
from experiments.session import Session
from experiments.tracking.status import ArtifactState
from experiments.verbs import Outcome, wait
from experiments.verbs.wait import next_interval
from tests.support.cli import run_in_process as _code
from tests.support.experiments import FakeExecutor, fake_executor


@pytest.fixture
def ex(tmp_path: Path) -> FakeExecutor:
    return fake_executor(tmp_path, "waiting")


def test_wait_polls_until_nothing_is_live_with_a_growing_interval(
        ex: FakeExecutor, fake: FakeBackend) -> None:
    session = Session.open(ex)
    assert cli_main.run(ex, ["launch"]) == 0
    sleeps: list[float] = []
    script = [lambda: None, lambda: None, lambda: fake.start("100", 0),
              lambda: None, lambda: (fake.finish("100", 0), fake.fail("100", 1)),
              lambda: fake.finish("100", 2)]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        script[len(sleeps) - 1]()

    queries = fake.calls.get("query", 0)
    result = wait(session, interval_s=2.0, sleep=sleep, clock=lambda: float(len(sleeps)),
                  tick_s=None)  # the scheduler alone: this counts its polls
    assert result.outcome is Outcome.FAILED and result.polls == 7
    assert fake.calls["query"] - queries == 7  # one scheduler query per poll
    assert sleeps[:2] == [2.0, 3.0]  # grows while nothing changes
    assert sleeps[3] == 2.0  # back to the first interval after a change


def test_wait_times_out_while_something_is_live(ex: FakeExecutor, fake: FakeBackend) -> None:
    session = Session.open(ex)
    assert cli_main.run(ex, ["launch"]) == 0
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    result = wait(session, timeout_s=30, interval_s=5, sleep=sleep, clock=lambda: now[0])
    assert result.outcome is Outcome.TIMED_OUT and 30 <= result.elapsed_s < 31


def test_interval_is_capped() -> None:
    interval = 5.0
    for _ in range(50):
        interval = next_interval(interval, False, 5.0)
    assert interval == 120.0


def test_exit_codes_of_wait_and_status(ex: FakeExecutor, fake: FakeBackend,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert _code(ex, "launch", capsys=capsys)[0] == 0
    code, out = _code(ex, "status", capsys=capsys)
    assert code == 3 and "queued" in out
    code, out = _code(ex, "wait", "--timeout", "0", capsys=capsys)
    assert code == 3 and "Timed out" in out
    fake.finish("100", 0)
    fake.fail("100", 1, error="boom")
    fake.finish("100", 2)
    code, out = _code(ex, "wait", capsys=capsys)
    assert code == 1 and "boom" in out and "not all built" in out
    assert _code(ex, "status", capsys=capsys)[0] == 1
    code, out = _code(ex, "wait", "nope", capsys=capsys)
    assert code == 2 and "unknown stage 'nope'" in out  # usage, as the docs say


def test_wait_and_status_exit_0_when_all_built(ex: FakeExecutor, fake: FakeBackend,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert _code(ex, "launch", capsys=capsys)[0] == 0
    fake.finish("100")
    code, out = _code(ex, "wait", capsys=capsys)
    assert code == 0 and "All built" in out
    assert _code(ex, "status", capsys=capsys)[0] == 0
    code, out = _code(ex, "status", "--watch", capsys=capsys)  # nothing live: ends at once
    assert code == 0 and "3" in out


def test_wait_in_a_real_process_without_a_terminal(tmp_path: Path) -> None:
    """Local backend, piped: the exit code says some failed; no terminal codes in the output."""
    script = tmp_path / "exp.py"
    script.write_text(textwrap.dedent(f"""
        from dataclasses import dataclass
        from experiments import Artifact, ArtifactSet, LocalExecutor, Task

        @dataclass(frozen=True)
        class S(Artifact):
            x: int
            def construct(self, builder: Task):
                builder.run_command(f"test {{self.x}} != 1")

        executor = LocalExecutor(project="waitproc", artifact_path={str(tmp_path / 'a')!r},
                                 code_path={str(tmp_path)!r})
        executor.stage("s", ArtifactSet.from_product(cls=S, params={{"x": [0, 1]}}))
        if __name__ == "__main__":
            executor.auto_cli()
    """), encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script), *args], capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)

    assert run("wait", "--timeout", "1").returncode == 1  # nothing launched: not built
    assert run("launch").returncode == 1
    result = run("wait")
    assert result.returncode == 1, result.stderr
    assert "\x1b[" not in result.stdout and "1 built, 1 failed" in result.stdout


def _frozen_clock() -> tuple[list[float], object, object]:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    return now, sleep, lambda: now[0]


def test_wait_returns_when_the_disk_shows_every_end_while_the_scheduler_is_frozen(
        ex: FakeExecutor, fake: FakeBackend) -> None:
    """Issue 26: markers and status files end the wait within a tick, without a poll."""
    session = Session.open(ex)
    assert cli_main.run(ex, ["launch"]) == 0
    now, sleep, clock = _frozen_clock()
    queries = fake.calls.get("query", 0)

    def ticking(seconds: float) -> None:
        sleep(seconds)
        if now[0] >= 3:  # the workers write their files; the scheduler can no longer answer
            fake.unreachable = True
            fake.finish("100", 0)
            fake.fail("100", 1, error="boom")
            fake.finish("100", 2)

    result = wait(session, interval_s=1000, sleep=ticking, clock=clock, timeout_s=5000)
    assert result.outcome is Outcome.FAILED and 3 <= result.elapsed_s <= 4
    assert fake.calls["query"] - queries == 1  # the first poll only
    assert [s.counts for s in result.report.stages][0] == {
        ArtifactState.BUILT: 2, ArtifactState.FAILED: 1}


def test_wait_does_not_call_built_a_task_killed_before_it_wrote_anything(
        ex: FakeExecutor, fake: FakeBackend) -> None:
    """The disk shows no end for a task the scheduler killed before its worker started: only
    the next poll can tell, and it says failed, not built."""
    session = Session.open(ex)
    assert cli_main.run(ex, ["launch"]) == 0
    now, sleep, clock = _frozen_clock()
    queries = fake.calls.get("query", 0)

    def ticking(seconds: float) -> None:
        sleep(seconds)
        if now[0] >= 3:
            fake.finish("100", 0)
            fake.finish("100", 2)
            fake.time_out("100", 1)  # killed: no marker, no status file

    result = wait(session, interval_s=60, sleep=ticking, clock=clock)
    assert result.outcome is Outcome.FAILED and result.elapsed_s >= 60
    assert fake.calls["query"] - queries == 2  # the end came from the scheduler's poll
