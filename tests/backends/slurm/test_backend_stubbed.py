"""The Slurm backend with a client whose commands are answered here: the calls it makes,
where Slurm's answer is not the point.

* A launch beyond the cluster's MaxJobCount is refused before any sbatch (the small test
  cluster's ``MaxArraySize=5``, ``MaxJobCount=200``): Slurm counts every array *task* against
  it, and past it sbatch answers "temporarily unable to accept job" and retries without end.
  tests/e2e/test_slurm_e2e.py splits arrays at the real small cluster's MaxArraySize (read from
  the same ``scontrol show config``).
* ``cancel`` stops every live job with one scancel call, and marks each job so its dying
  upstream workers leave its tasks "cancelled".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, SlurmExecutor, Task, _proc, paths, verbs
from experiments.backends.slurm.backend import SlurmBackend
from experiments.backends.slurm.client import SlurmClient
from experiments.config import settings
from experiments.errors import SubmissionError
from experiments.session import Session
from experiments.tracking.store import JobRecord, RecordState

CONFIG = "MaxArraySize            = 5\nMaxJobCount             = 200\n"


class AnsweringClient(SlurmClient):
    """``scontrol show config`` answers CONFIG, any other query an empty answer; every command
    is logged. A real Slurm command that got past it finds no cluster (no such SLURM_CONF): an
    sbatch must not come, and must never reach the test cluster either."""

    def __init__(self, nowhere: Path) -> None:
        super().__init__({"SLURM_CONF": str(nowhere)}, attempts=1)
        self.commands: list[str] = []
        self.argvs: list[list[str]] = []

    def _run(self, argv: Sequence[str]) -> _proc.ProcResult:
        self.commands.append(argv[0])
        self.argvs.append(list(argv))
        if tuple(argv[:3]) == ("scontrol", "show", "config"):
            return _proc.ProcResult(tuple(argv), 0, CONFIG, "")
        return _proc.ProcResult(tuple(argv), 0, "", "")  # an empty queue, no limits


@dataclass(frozen=True)
class Pre(Artifact):
    lr: int

    def get_requirements(self) -> dict[str, object]:
        return {"partition": "gpu", "time": "10:00"}

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def _session(tmp_path: Path, n: int, client: AnsweringClient,
             snapshot_code: bool = True) -> Session:
    ex = SlurmExecutor(project="toomany", artifact_path=str(tmp_path / "out"),
                       code_path=str(tmp_path), snapshot_code=snapshot_code)
    ex.stage("pretrain", ArtifactSet.from_product(cls=Pre, params={"lr": list(range(n))}))
    backend = SlurmBackend(settings.load(), client)
    return Session.open(ex, backend="slurm", instances={"slurm": backend})


def test_a_launch_beyond_max_job_count_is_refused_before_any_sbatch(tmp_path: Path) -> None:
    client = AnsweringClient(tmp_path / "no-such-slurm.conf")
    session = _session(tmp_path, 250, client)
    with pytest.raises(SubmissionError) as refused:
        verbs.launch(session)
    assert "250 tasks" in str(refused.value) and "MaxJobCount=200" in str(refused.value)
    assert "nothing was submitted" in str(refused.value)
    assert "sbatch" not in client.commands
    assert session.records() == []



def test_cancel_stops_every_job_with_one_scancel(tmp_path: Path) -> None:
    client = AnsweringClient(tmp_path / "no-such-slurm.conf")
    backend = SlurmBackend(settings.load(), client)
    specs = [tmp_path / f"spec{i}" for i in range(3)]
    for spec in specs:
        spec.mkdir()
    records = [JobRecord(f"n{i}", "slurm", "pretrain", 0, [["a", "Pre/a"]], job_id=str(100 + i),
                         state=RecordState.SUBMITTED, spec_dir=str(spec))
               for i, spec in enumerate(specs)]
    backend.cancel(records)
    assert client.commands.count("scancel") == 1  # (and at most the cluster's name, once)
    assert set(client.commands) <= {"scancel", "scontrol"}
    scancel = [argv for argv in client.argvs if argv[0] == "scancel"]
    assert scancel[0][1:] == ["100", "101", "102"]
    assert all((spec / paths.CANCEL_REQUESTED).exists() for spec in specs)


def test_a_launch_lays_out_its_arrays_once(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The allowance check before the waves and the submission share one layout (a million
    tasks take seconds to lay out); a drylaunch too. Another plan is laid out anew."""
    from experiments.backends.slurm import layout as slurm_layout

    calls: list[int] = []
    real = slurm_layout.layout_plan

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(slurm_layout, "layout_plan", counted)
    client = AnsweringClient(tmp_path / "no-such-slurm.conf")
    session = _session(tmp_path, 250, client, snapshot_code=False)  # relays could run
    with pytest.raises(SubmissionError, match="MaxJobCount=200"):
        verbs.launch(session)  # planned, allowance checked, refused before any sbatch
    assert len(calls) == 1
    dry = verbs.drylaunch(session)
    assert len(calls) == 2 and sum(a.task_count for a in dry.arrays) == 250
