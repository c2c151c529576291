"""``cancel`` typed while a launch is submitting, on FakeBackend: the launch stops before its
next submission, and nothing it submitted is left live.

The launch runs in a thread and its third submission waits until ``cancel`` (in another
thread, with its own session, as from another terminal) has asked launches to stop; the
project's launch lock and the stop request are the same files two processes would use.
tests/reliability/test_controller_faults.py has the real cluster's faults.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from experiments import Artifact, ArtifactSet, LocalExecutor, Task, paths, verbs
from experiments.backends.fake import FakeBackend
from experiments.errors import LaunchStopped
from experiments.session import Session
from experiments.tracking.store import RecordState
from experiments.verbs.cancel import CancelResult, cancel_jobs

ARRAYS = 10
HELD = 3  # the submission that waits for ``cancel``


class SlowFake(FakeBackend):
    """One array per artifact; submission HELD waits until the test lets it through."""

    def __init__(self) -> None:
        super().__init__(max_array_size=1)
        self.submitting = threading.Event()
        self.go_on = threading.Event()
        self.submissions = 0

    def _submit(self, name: str, relpaths: list[str], root: str) -> str | None:
        self.submissions += 1
        if self.submissions == HELD:
            self.submitting.set()
            assert self.go_on.wait(60), "the test never let the submission through"
        return super()._submit(name, relpaths, root)


@dataclass(frozen=True)
class M(Artifact):
    i: int

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def _session(ex: LocalExecutor, fake: FakeBackend) -> Session:
    return Session.open(ex, backend="fake", instances={"fake": fake})


def _in_thread(target: object, into: list[object]) -> threading.Thread:
    """Run ``target()`` in a thread; its result or exception is appended to ``into``."""
    def run() -> None:
        try:
            into.append(target())  # type: ignore[operator]
        except Exception as exc:  # the test looks at it
            into.append(exc)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_cancel_during_a_launch_leaves_no_live_job(tmp_path: Path) -> None:
    ex = LocalExecutor(project="stopme", artifact_path=str(tmp_path / "out"),
                       code_path=str(tmp_path))
    ex.stage("m", ArtifactSet.from_product(cls=M, params={"i": list(range(ARRAYS))}))
    fake = SlowFake()
    launched: list[object] = []
    launch = _in_thread(lambda: verbs.launch(_session(ex, fake)), launched)
    assert fake.submitting.wait(60), launched  # the launch is submitting
    session = _session(ex, fake)
    cancelled: list[object] = []
    cancel = _in_thread(lambda: cancel_jobs(session, wait_s=60), cancelled)
    stop = paths.launch_stop_request(session.store.home, "stopme")
    for _ in range(600):  # until cancel has asked launches to stop
        if stop.exists() or not cancel.is_alive():
            break
        time.sleep(0.1)
    assert stop.exists(), cancelled
    fake.go_on.set()
    launch.join(60)
    cancel.join(60)

    [stopped] = launched
    assert isinstance(stopped, LaunchStopped), stopped
    assert "launch stopped by `cancel`" in str(stopped)
    [result] = cancelled
    assert isinstance(result, CancelResult), result
    assert any("asked it to stop" in note for note in result.notes)
    assert len(fake.jobs) == HELD < ARRAYS  # nothing was submitted after the request
    live = [(job_id, t.state) for job_id, job in fake.jobs.items() for t in job.tasks
            if t.state.live]
    assert live == []  # nothing live behind the cancel
    assert sorted(result.job_ids) == sorted(fake.jobs)
    records = session.records()
    assert len(records) == HELD and {r.state for r in records} == {RecordState.CANCELLED}

