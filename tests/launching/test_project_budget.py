"""config.json's ``max_running`` bounds the project across launches (issue 23, item 6): a launch
is told which live arrays of earlier launches hold part of the budget (from the one scheduler
query it makes anyway); ``launch --max-running`` keeps its per-launch meaning."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from experiments import Artifact, ArtifactSet, LocalExecutor, Task
from experiments.backends.fake import FakeBackend
from experiments.launching.launch_context import LaunchContext
from experiments.launching.project_budget import held_slots
from experiments.plan import Plan
from experiments.session import Session
from experiments.tracking.store import JobRecord
from experiments.verbs.launch import launch


@dataclass(frozen=True)
class Up(Artifact):
    i: int

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass(frozen=True)
class Other(Artifact):
    i: int

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


class Spy(FakeBackend):
    """The fake backend, keeping what each launch was told is held."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[list[tuple[str, int]]] = []
        self.budgets: list[int | None] = []

    def launch(self, plan: Plan, ctx: LaunchContext) -> list[JobRecord]:
        self.held.append(list(ctx.held))
        self.budgets.append(ctx.max_running)
        return super().launch(plan, ctx)


def _config() -> Path:
    home = Path(os.environ["EXPERIMENTS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    return home / "config.json"


def _session(tmp_path: Path, backend: Spy) -> Session:
    ex = LocalExecutor(project="pb", artifact_path=str(tmp_path / "a"), code_path=str(tmp_path))
    ex.stage("up", ArtifactSet.from_product(cls=Up, params={"i": [0, 1, 2, 3, 4]}))
    ex.stage("other", ArtifactSet.from_product(cls=Other, params={"i": [0, 1]}))
    return Session.open(ex, backend="fake", instances={"fake": backend})


def test_config_budget_counts_the_live_arrays_of_earlier_launches(
        tmp_path: Path) -> None:
    _config().write_text(json.dumps({"max_running": {"pb": 3}}))
    backend = Spy()
    [up] = launch(_session(tmp_path, backend), ["up"]).records
    assert backend.held == [[]] and backend.budgets == [3]
    backend.finish(up.job_id or "", 0)
    backend.finish(up.job_id or "", 1)
    backend.finish(up.job_id or "", 2)  # 2 live tasks left: it holds 2 of the 3 slots
    launch(_session(tmp_path, backend), ["other"])
    assert backend.held[-1] == [(up.job_id, 2)]


def test_an_array_holds_no_more_than_the_budget_and_ended_ones_hold_nothing(
        tmp_path: Path) -> None:
    _config().write_text(json.dumps({"max_running": 2}))
    backend = Spy()
    [up] = launch(_session(tmp_path, backend), ["up"]).records  # 5 live tasks, budget 2
    launch(_session(tmp_path, backend), ["other"])
    assert backend.held[-1] == [(up.job_id, 2)]
    for job_id in list(backend.jobs):
        backend.finish(job_id)
    session = _session(tmp_path, backend)
    assert held_slots(session.records(), session.live(session.records()), 2) == []


def test_the_command_line_budget_is_per_launch(tmp_path: Path) -> None:
    _config().write_text(json.dumps({"max_running": {"pb": 3}}))
    backend = Spy()
    launch(_session(tmp_path, backend), ["up"])
    launch(_session(tmp_path, backend), ["other"], max_running=3)
    assert backend.held == [[], []] and backend.budgets == [3, 3]
