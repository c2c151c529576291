"""A journal that cannot vanish (issue 23, item 3): a stage's journal deleted, emptied,
truncated (mid-line or at a line boundary), its header cut off, its events replaced by older
ones, or its ``jobs.json`` deleted beside a journal with events — each is a clear error naming
the file and the recovery, never a stage with fewer records; nothing is submitted. Our logic on
FakeBackend; the three shapes the issue names with jobs queued on the real Slurm cluster.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from experiments import ArtifactSet, LocalExecutor, StoreError
from experiments.backends.fake import FakeBackend
from experiments.session import Session
from experiments.verbs.launch import drylaunch, launch
from tests.support.cli import run_cli
from tests.support.experiments import Down, Up
from tests.support.slurm import cancel_all, my_jobs


def _session(tmp_path: Path, backend: FakeBackend, stages: tuple[str, ...] = ("up", "down")
             ) -> Session:
    ex = LocalExecutor(project="jl", artifact_path=str(tmp_path / "a"), code_path=str(tmp_path))
    ups = ArtifactSet.from_product(cls=Up, params={"i": [0, 1, 2]})
    if "up" in stages:
        ex.stage("up", ups)
    if "down" in stages:
        ex.stage("down", ups.map(lambda u: Down(u)))
    return Session.open(ex, backend="fake", instances={"fake": backend})


def _journal(home: Path, stage: str = "up") -> Path:
    (journal,) = (home / "projects" / "jl" / stage).glob("jobs.journal-*.jsonl")
    return journal


def _drop_last_line(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))


Damage = Callable[[Path, bytes], None]
DAMAGE: dict[str, Damage] = {
    "deleted": lambda j, old: j.unlink(),
    "emptied": lambda j, old: j.write_bytes(b""),
    "truncated mid-line": lambda j, old: j.write_bytes(j.read_bytes()[:-25]),
    "truncated at a line boundary": lambda j, old: _drop_last_line(j),
    "older events, newer header": lambda j, old: j.write_bytes(
        j.read_bytes().split(b"\n", 1)[0] + b"\n" + old.split(b"\n", 1)[1]),
    "header cut off": lambda j, old: j.write_bytes(j.read_bytes().split(b"\n", 1)[1]),
}


@pytest.mark.parametrize("shape", sorted(DAMAGE))
def test_a_damaged_journal_is_an_error_and_nothing_is_submitted(
        tmp_path: Path, experiments_home: Path, shape: str) -> None:
    backend = FakeBackend()
    [up] = launch(_session(tmp_path, backend, ("up",))).records  # 1 queued job in stage up
    older = _journal(experiments_home).read_bytes()
    backend.finish(up.job_id or "", 0)  # its end is recorded in up's journal by...
    launch(_session(tmp_path, backend))  # ...the launch of its dependents (stage down)
    assert _journal(experiments_home).read_bytes() != older
    ups = [r for r in _session(tmp_path, backend).records() if r.stage == "up"]
    assert len(ups) == 1 and len(backend.jobs) == 2
    journal = _journal(experiments_home)
    DAMAGE[shape](journal, older)

    for verb in (lambda s: s.records(), launch, drylaunch):
        with pytest.raises(StoreError) as err:
            verb(_session(tmp_path, backend))
        message = str(err.value)
        assert str(journal) in message, message
        assert "may be lost" in message and "Restore the file from a backup" in message
        assert "jl.up.*" in message  # how to find the queued jobs it would forget
    assert len(backend.jobs) == 2 and backend.calls["launch"] == 2  # nothing submitted


def test_jobs_json_deleted_beside_a_journal_with_events_is_an_error(
        tmp_path: Path, experiments_home: Path) -> None:
    backend = FakeBackend()
    launch(_session(tmp_path, backend))
    snapshot = _journal(experiments_home).with_name("jobs.json")
    snapshot.unlink()
    with pytest.raises(StoreError, match=rf"tracking file {snapshot} is missing while its "
                                         r"journal jobs\.journal-\d+\.jsonl holds events"):
        launch(_session(tmp_path, backend))
    assert len(backend.jobs) == 2 and backend.calls["launch"] == 1


def test_restoring_the_journal_restores_every_record(tmp_path: Path,
                                                     experiments_home: Path) -> None:
    backend = FakeBackend()
    launch(_session(tmp_path, backend))
    journal = _journal(experiments_home)
    kept = journal.read_bytes()
    journal.write_bytes(b"")
    with pytest.raises(StoreError):
        _session(tmp_path, backend).records()
    journal.write_bytes(kept)  # "restore the file from a backup"
    assert len(_session(tmp_path, backend).records()) == 2
    launch(_session(tmp_path, backend))  # everything queued: nothing resubmitted
    assert len(backend.jobs) == 2


EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Q(Artifact):
    i: int
    def get_requirements(self):
        return {"partition": "cpu", "time": "5:00"}
    def construct(self, builder: Task):
        builder.run_command("sleep 300")

ex = SlurmExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("q", ArtifactSet.from_product(cls=Q, params={"i": [0, 1, 2]}))
if __name__ == "__main__":
    ex.auto_cli()
'''


def _ids(project: str) -> set[str]:
    return {row.split("|")[0].split("_")[0] for row in my_jobs(f"{project}.")}


@pytest.mark.slurm
def test_journal_emptied_deleted_truncated_with_jobs_queued_on_slurm(
        tmp_path: Path, slurm_cluster: object) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    project = f"jl{uuid.uuid4().hex[:8]}"
    env = {"OUT": str(tmp_path / "out"), "PROJECT": project}
    home = Path(os.environ["EXPERIMENTS_HOME"])
    try:
        first = run_cli(script, "launch", env=env)
        assert first.returncode == 0, first.stdout + first.stderr
        queued = _ids(project)
        assert queued
        (journal,) = (home / "projects" / project / "q").glob("jobs.journal-*.jsonl")
        kept = journal.read_bytes()
        for shape in ("emptied", "deleted", "truncated at a line boundary"):
            DAMAGE[shape](journal, kept)
            for verb in ("status", "launch"):
                res = run_cli(script, verb, env=env)
                assert res.returncode != 0, (shape, verb, res.stdout)
                assert str(journal) in res.stderr and "Restore the file" in res.stderr, \
                    (shape, verb, res.stderr)
            assert _ids(project) == queued, shape  # nothing submitted
            journal.write_bytes(kept)
        again = run_cli(script, "launch", env=env)
        assert again.returncode == 0, again.stderr
        assert _ids(project) == queued  # restored: every job known, none twice
    finally:
        cancel_all(project)
