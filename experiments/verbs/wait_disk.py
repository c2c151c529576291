"""What the file system says of a wait's artifacts between two polite scheduler polls.

A worker writes its artifact's done marker when it is built and its status file when it fails,
so ``wait`` learns of most ends at once from the disk (issue 26), without asking the
controller. The disk cannot say everything: a task killed before its worker wrote a word (a
node failure, a cancelled queued task, a time limit before the first line) shows nothing, so
only an end *shown by a file* for every selected artifact ends the wait early; anything else
waits for the next scheduler poll, which can tell.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..session import Session
from ..tracking.ends import of_root, root_of
from ..tracking.markers import DoneIndex
from ..tracking.status import latest_tasks, worker_account
from ..worker.common import WorkerState

# A worker's own account that ends its attempt for good (interrupted and requeued do not).
FINAL = frozenset({WorkerState.FAILED.value, WorkerState.DEPENDENCY_FAILED.value})


class DiskWatch:
    """Which of a wait's artifacts have an end the file system shows; asked each tick, it
    looks again only at those that had none (a marker, once seen, is not asked again)."""

    def __init__(self, session: Session, stages: Sequence[str]) -> None:
        self.session = session
        self.root = session.experiment.artifact_path
        self.open = sorted({a.relpath for s in stages
                            for a in session.experiment.stages[s]})
        self.ids = {a.relpath: a.artifact_id for s in stages
                    for a in session.experiment.stages[s]}

    def all_ended(self) -> bool:
        """True when every selected artifact has its done marker, or its latest task's worker
        recorded a failure; a task that wrote nothing keeps this False."""
        done = DoneIndex(self.root)
        self.open = [r for r in self.open if not done(r)]
        if not self.open:
            return True
        if not all(done.has_folder(r) for r in self.open):
            return False  # no folder: nothing written yet, only the scheduler can say
        latest = latest_tasks(of_root(self.session.records(), self.root))
        for relpath in self.open:
            hit = latest.get(self.ids[relpath])
            if hit is None:
                return False
            record, index = hit
            where = root_of(record) or self.root
            if worker_account(record, index, where, done).get("state") not in FINAL:
                return False
        return True
