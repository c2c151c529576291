"""The words ``launch`` prints while Slurm is slow to accept a job (pure formatting)."""

from __future__ import annotations

import re
import sys

import pytest

from experiments import _proc
from experiments.cli.launch_cmd import waiting_line
from experiments.launching.launch_context import EventKind, LaunchEvent
from experiments.launching.waits import SubmitWait, WaitPhase
from experiments.tracking.store import JobRecord

NAME = "proj.train.ab12cd34.t1g0c0"


def _event(phase: WaitPhase, attempt: int = 1, said: str = "") -> LaunchEvent:
    record = JobRecord(name=NAME, backend="slurm", stage="train", tier=1,
                       tasks=[["id0", "a/0"], ["id1", "a/1"]])
    wait = SubmitWait(phase, NAME, waited_s=25.4, attempt=attempt, attempts=4, next_in_s=35,
                      said=said)
    return LaunchEvent(EventKind.WAITING, total=3, record=record, wait=wait, position=2)


def test_a_slow_sbatch_names_the_submission_what_slurm_says_and_what_comes_next() -> None:
    line = waiting_line(_event(WaitPhase.SUBMITTING, said="sbatch: error: Slurm temporarily "
                                                          "unable to accept job, sleeping"))
    assert line.startswith(f"Slurm is slow to accept job {NAME} (stage train, tier 1, "
                           "2 artifact(s); submission 2 of 3): waited 25 s; Slurm says "
                           '"sbatch: error: Slurm temporarily unable to accept job, sleeping". ')
    assert re.search(r"Next: sbatch is stopped at \d\d:\d\d:\d\d \(in 35 s\), then the job is "
                     r"looked up by name and submitted again \(attempt 2 of 4\)\.$", line)


def test_the_last_attempt_says_the_launch_gives_up() -> None:
    assert "one last time and the launch gives up" in waiting_line(
        _event(WaitPhase.SUBMITTING, attempt=4))
    assert "one last look-up by name at" in waiting_line(_event(WaitPhase.RETRY, attempt=5))


def test_a_retry_and_a_repeated_lookup_say_when() -> None:
    retry = waiting_line(_event(WaitPhase.RETRY, attempt=2, said="Socket timed out"))
    assert 'Slurm says "Socket timed out"' in retry
    assert re.search(r"Next: look the job up by name, then submit it again at "
                     r"\d\d:\d\d:\d\d \(in 35 s\); attempt 2 of 4\.$", retry)
    lookup = waiting_line(_event(WaitPhase.LOOKUP, attempt=2))
    assert "no job of that name yet; looking again at" in lookup
    assert "in case the controller still creates it" in lookup


def test_run_watched_reports_a_slow_command_with_its_stderr_so_far() -> None:
    ticks: list[tuple[float, str]] = []
    res = _proc.run_watched(
        [sys.executable, "-c", "import sys,time;print('said',file=sys.stderr,flush=True);"
         "time.sleep(1.5);print('out')"],
        tick=lambda s, err: ticks.append((s, err)), first_s=0.2, every_s=0.3, timeout_s=30)
    assert res.ok and res.stdout == "out\n" and res.stderr == "said\n"
    assert ticks and all(err.startswith("said") for _, err in ticks[-1:])
    assert [s for s, _ in ticks] == sorted(s for s, _ in ticks)


def test_run_watched_stops_a_command_at_its_timeout() -> None:
    with pytest.raises(_proc.ProcTimeout):
        _proc.run_watched([sys.executable, "-c", "import time;time.sleep(30)"],
                          tick=lambda s, err: None, first_s=0.1, every_s=0.1, timeout_s=0.5)
    with pytest.raises(TypeError):
        _proc.run_watched("echo hi", tick=lambda s, err: None)  # type: ignore[arg-type]
