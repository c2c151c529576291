"""A small pipeline (trainings → evaluations → a leaderboard) on FakeBackend, for the tests of
issue 24's "one truth" items; ``build`` writes what the real worker writes when it builds a
task (``.artifact.json`` with params and provenance, then ``.done`` with the build id).

The classes come from :func:`classes`, so a test can change a default (``num_examples`` 500 →
4000) or add a field (``solver``) and keep every artifact's identity, as editing the
experiment file does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments import Artifact, ArtifactSet, Executor, Task, paths
from experiments._atomic import write_json
from experiments.backends.fake import FakeBackend
from experiments.session import Session
from experiments.tracking.store import JobRecord
from experiments.worker import specs


class FakeExecutor(Executor):
    default_backend = "fake"


def classes(num_examples: int = 500, solver: bool = False) -> tuple[type, type, type]:
    """Train, Eval (its ``num_examples`` default; with ``solver`` a new field whose default
    reproduces the old behaviour) and Board, with the same names whatever the defaults."""
    n = num_examples

    @dataclass(frozen=True)
    class Train(Artifact):
        seed: int

        def construct(self, builder: Task) -> None:
            builder.run_command("true")

    if solver:
        @dataclass(frozen=True)
        class Eval(Artifact):
            train: Train
            num_examples: int = n
            solver: str = "solve"

            def construct(self, builder: Task) -> None:
                builder.run_command("true")
    else:
        @dataclass(frozen=True)
        class Eval(Artifact):  # type: ignore[no-redef]
            train: Train
            num_examples: int = n

            def construct(self, builder: Task) -> None:
                builder.run_command("true")

    @dataclass(frozen=True)
    class Board(Artifact):
        evals: tuple[Any, ...] = field(default=())

        def construct(self, builder: Task) -> None:
            builder.run_command("true")

    return Train, Eval, Board


def experiment(tmp: Path, root: str = "A", **kw: Any) -> FakeExecutor:
    """Two trainings, their evaluations and a leaderboard over them, building into ``root``."""
    train, ev, board = classes(**kw)
    ex = FakeExecutor(project="truth", artifact_path=str(tmp / root), code_path=str(tmp))
    trains = ex.stage("train", ArtifactSet.from_product(cls=train, params={"seed": [1, 2]}))
    evals = ex.stage("eval", trains.map(lambda t: ev(train=t)))
    ex.stage("board", [board(evals=tuple(evals))])
    return ex


def session(ex: Executor, fake: FakeBackend) -> Session:
    return Session.open(ex, backend="fake", instances={"fake": fake})


def record(s: Session, stage: str) -> JobRecord:
    """The newest job of ``stage``."""
    return sorted(s.records([stage]), key=lambda r: r.submitted_at)[-1]


def build(fake: FakeBackend, rec: JobRecord, index: int | None = None) -> None:
    """Tasks of ``rec`` end built, with the record the worker writes (params from the spec,
    a build id in ``.done`` and in the provenance, the dependencies' build ids)."""
    root = rec.artifact_path or ""
    for i in range(len(rec.tasks)) if index is None else [index]:
        task = specs.read_task(rec.spec_dir, i)
        build_id = f"20260101T000000Z-{os.urandom(4).hex()}"
        deps = {d: _build_id(root, d) for d in task["deps"]}
        write_json(paths.meta_file(root, task["relpath"]),
                   {"class": task["class"], "params": task["params"], "artifact_id": task["id"],
                    "relpath": task["relpath"],
                    "provenance": {"format": 1, "build_id": build_id, "job": f"{rec.job_id}_{i}",
                                   "dependencies": deps, "code": {"snapshot": None}}},
                   durable=False)
        fake.finish(rec.job_id or "", i)
        write_json(paths.done_marker(root, task["relpath"]),
                   {"job": f"{rec.job_id}_{i}", "build_id": build_id}, durable=False)


def _build_id(root: str, relpath: str) -> str | None:
    import json

    try:
        return json.loads(Path(paths.done_marker(root, relpath)).read_text()).get("build_id")
    except (OSError, ValueError):
        return None


def build_all(s: Session, fake: FakeBackend) -> None:
    """Launch every stage and build every task, upstream first."""
    from experiments import verbs

    verbs.launch(s)
    for stage in ("train", "eval", "board"):
        build(fake, record(s, stage))
