"""Why queued tasks wait, as ``status``, ``wait``, ``history`` and ``--json`` show it, on
FakeBackend steered into the reasons a real backend explains (the grouping itself:
tests/tracking/test_waiting.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.backends.fake import FakeBackend
from experiments.states import Outlook
from tests.support.cli import run_in_process as _run
from tests.support.experiments import FakeExecutor, fake_executor

TIME = "the gpu partition allows 12:00:00, the artifact asks 24:00:00; lower `time`"


@pytest.fixture
def ex(tmp_path: Path) -> FakeExecutor:
    return fake_executor(tmp_path, "why", n=4)


LONG = f"3 queued: PartitionTimeLimit — {TIME} (never clears on its own) [nodes]"


@pytest.fixture
def stuck(ex: FakeExecutor, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    """Job 100: tasks 0-2 pend PartitionTimeLimit (never clears), task 3 Priority."""
    assert _run(ex, "launch", capsys=capsys)[0] == 0
    fake.pend("100", reason="PartitionTimeLimit", hint=TIME, outlook=Outlook.NEVER)
    fake.pend("100", 3, reason="Priority", hint="other jobs are ahead of it in the queue")


@pytest.mark.usefixtures("stuck")
def test_status_prints_the_groups_and_says_which_never_clear(
        ex: FakeExecutor, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(ex, "status", capsys=capsys)
    lines = [ln.strip() for ln in out.splitlines()]
    assert code == 3
    assert lines.index(LONG) < lines.index(
        "1 queued: Priority — other jobs are ahead of it in the queue [nodes]")
    assert "3 queued task(s) will never start on their own" in out


@pytest.mark.usefixtures("stuck")
def test_status_json_carries_the_reason_of_every_queued_task(
        ex: FakeExecutor, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(ex, "status", "--json", capsys=capsys)
    data = json.loads(out)
    [stage] = data["stages"]
    assert code == 3 and [t["reason"] for t in stage["queued"]] == 3 * ["PartitionTimeLimit"] + [
        "Priority"]
    assert stage["queued"][0] == {"relpath": stage["queued"][0]["relpath"], "state": "queued",
                                  "detail": TIME, "task": "100_0", "held": False,
                                  "reason": "PartitionTimeLimit",
                                  "outlook": "never clears on its own"}
    assert [(g["reason"], g["count"], g["never_clears"]) for g in data["waiting"]] == [
        ("PartitionTimeLimit", 3, True), ("Priority", 1, False)]


@pytest.mark.usefixtures("stuck")
def test_history_and_wait_lines_name_the_reasons(
        ex: FakeExecutor, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(ex, "history", capsys=capsys)
    assert code == 0 and "3 queued (PartitionTimeLimit)" in out and "1 queued (Priority)" in out
    assert LONG in out
    code, out = _run(ex, "wait", "--timeout", "1.5", "--interval", "1", capsys=capsys)
    polls = [ln for ln in out.splitlines() if ln.startswith("[")]
    assert code == 3 and polls
    assert all("why: 3 PartitionTimeLimit (never clears on its own), 1 Priority" in p
               for p in polls)
    assert LONG in out  # the final table says it in full


def test_held_tasks_stay_problems_and_tasks_without_a_reason_are_plain_queued(
        ex: FakeExecutor, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(ex, "launch", capsys=capsys)[0] == 0
    fake.hold("100", 0)  # the FakeBackend gives a hint but no outlook
    code, out = _run(ex, "status", "--json", capsys=capsys)
    [stage] = json.loads(out)["stages"]
    assert [p["task"] for p in stage["problems"]] == ["100_0"] and stage["queued"] == []
    code, out = _run(ex, "status", capsys=capsys)
    assert "Why queued tasks wait" not in out and "fake-release 100_0" in out
