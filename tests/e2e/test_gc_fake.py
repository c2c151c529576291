"""``gc`` keeps a running job's files, on FakeBackend through the real CLI (in this process):
the checks of test_gc.py, with a task the scheduler says is running as the live job.

Which files a job has and whether it is live are our records and our question to the backend
(verbs/housekeeping.py); test_gc.py runs the same checks with a real live process (a detached
local launch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, Task
from experiments.backends.fake import FakeBackend
from experiments.tracking.store import Store
from tests.support.experiments import FakeExecutor
from tests.support.gc_checks import check_gc, ok


@dataclass(frozen=True)
class Quick(Artifact):
    i: int

    def construct(self, builder: Task) -> None:
        builder.run_command(f"echo quick {self.i}")


@dataclass(frozen=True)
class Slow(Artifact):
    i: int

    def construct(self, builder: Task) -> None:
        builder.run_command("echo started; sleep 300")



def _logs(home: Path, project: str, stage: str) -> None:
    """Write every task log of the stage's jobs, where the scheduler would."""
    for record in Store(home, project).records(stage):
        for i in range(len(record.tasks)):
            record.log_path(i).parent.mkdir(parents=True, exist_ok=True)
            record.log_path(i).write_text(f"task {i} of {record.job_id}\n")


def test_gc_keeps_a_running_job(tmp_path: Path, fake: FakeBackend,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    ex = FakeExecutor(project="gcfake", artifact_path=str(out), code_path=str(tmp_path))
    ex.stage("quick", ArtifactSet.from_product(cls=Quick, params={"i": [0, 1]}))
    ex.stage("slow", ArtifactSet.from_product(cls=Slow, params={"i": [0]}))
    home = Path(os.environ["EXPERIMENTS_HOME"])

    def cli(*argv: str) -> tuple[int, str]:
        with pytest.raises(SystemExit) as ended:
            ex.auto_cli(list(argv))
        said = capsys.readouterr()
        code = int(ended.value.code or 0)
        return code, said.out + (said.err if code else "")

    def launch_and_finish(stage: str) -> str:
        ok(cli("launch", stage))
        job_id = max(fake.jobs, key=int)
        _logs(home, "gcfake", stage)
        return job_id

    fake.finish(launch_and_finish("quick"))
    ok(cli("invalidate", "quick", "--where", "i=0", "--yes"))
    fake.finish(launch_and_finish("quick"))
    ok(cli("invalidate", "quick", "--where", "i=1", "--yes"))
    rebuilt, = out.glob("Quick/i=0*/.done.invalidated-*")
    only_trace, = out.glob("Quick/i=1*/.done.invalidated-*")
    fake.start(launch_and_finish("slow"))  # running: its files must stay
    check_gc(cli, home, "gcfake", rebuilt, only_trace)
    assert Store(home, "gcfake").records("slow")[0].log_path(0).exists()  # the running task's
