"""How each stage stands: per state, how many artifacts, which ones and why (what ``status``
prints per stage). Built from the task views of :mod:`.status`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..model.artifact import Artifact
from ..states import JobState, TaskKey
from .markers import DoneIndex
from .status import (
    PROBLEMS,
    RECORDED_ENDS,
    ArtifactState,
    Live,
    StageStatus,
    TaskView,
    live_view,
    modified_detail,
    task_state,
)
from .store import JobRecord


def stage_status(stage: str, artifacts: Iterable[Artifact],
                 latest: Mapping[str, tuple[JobRecord, int]], live: Live,
                 root: str, done: DoneIndex | None = None,
                 stale: Mapping[str, str] | None = None) -> StageStatus:
    """Per-artifact states of a stage: built, stale, running, queued, failed, …, not started.

    ``latest`` comes from the records of every stage, so an artifact shared by two stages has
    one state in both; ``stale`` (artifact id → why) turns a built artifact stale.
    """
    out = StageStatus(stage)
    done = done or DoneIndex(root)
    counts = out.counts
    plain = _PlainStates(live, done)
    for art in artifacts:
        hit = latest.get(art.artifact_id)
        if hit is None:
            state = ArtifactState.BUILT if done(art.relpath) else ArtifactState.NOT_STARTED
            why = done.problem(art.relpath) if state is ArtifactState.BUILT else None
            if why is not None:
                state = ArtifactState.MODIFIED
                out.problems.append(TaskView("", -1, art.relpath, state, modified_detail(why)))
        else:
            quick = plain(hit[0], hit[1])
            if quick is None:  # anything else than built or plainly live: the full story
                view = task_state(hit[0], hit[1], live, root, done)
                quick = view.state
                if quick in PROBLEMS or view.held:
                    out.problems.append(view)
                elif view.outlook is not None:
                    out.waiting.append(view)
            elif quick is ArtifactState.QUEUED:
                st = live.get(TaskKey(hit[0].job_id or "?", hit[1]))
                if st is not None and st.outlook is not None:  # waits for a named reason
                    out.waiting.append(live_view(hit[0], hit[1], st))
            state = quick
        if state is ArtifactState.BUILT and stale and art.artifact_id in stale:
            state = ArtifactState.STALE
            out.stale.append(TaskView("", -1, art.relpath, state, stale[art.artifact_id]))
        counts[state] = counts.get(state, 0) + 1
    return out


def _plain_state(record: JobRecord, index: int, live: Live, done: DoneIndex
                 ) -> ArtifactState | None:
    """BUILT, or QUEUED/RUNNING for a task the scheduler holds (not held back) whose artifact
    has no folder yet, without building a view (100,000 of them in a big status); None for
    anything that needs :func:`task_state`."""
    relpath = record.tasks[index][1]
    if not done.has_folder(relpath):
        st = live.get(TaskKey(record.job_id or "?", index))
        if st is None:  # not asked: an end recorded without a worker (cancelled while queued)
            entry = record.ended.get(str(index))
            state = RECORDED_ENDS.get(entry.get("state")) if entry else None
            return state if state is not None and state not in PROBLEMS else None
        if st.state.live and not st.held and st.state is not JobState.ELSEWHERE:
            running = st.state is JobState.RUNNING and not record.packed  # pack: behind others
            return ArtifactState.RUNNING if running else ArtifactState.QUEUED
        return None
    return ArtifactState.BUILT if done(relpath) and done.problem(relpath) is None else None


class _PlainStates:
    """:func:`_plain_state` of every task of a job at once, for jobs the scheduler was not asked
    about (every end recorded: 100,000 ended tasks in a big status), once per job."""

    def __init__(self, live: Live, done: DoneIndex) -> None:
        self.live = live
        self.done = done
        self.asked = {key.job_id for key in live.statuses}
        self.jobs: dict[int, list[ArtifactState | None]] = {}

    def __call__(self, record: JobRecord, index: int) -> ArtifactState | None:
        if (record.job_id or "?") in self.asked:
            return _plain_state(record, index, self.live, self.done)
        states = self.jobs.get(id(record))
        if states is None:
            states = self.jobs[id(record)] = self._job(record)
        return states[index]

    def _job(self, record: JobRecord) -> list[ArtifactState | None]:
        done, has_folder, ended = self.done, self.done.has_folder, record.ended
        by_entry: dict[int, ArtifactState | None] = {}  # equal entries are one object
        out: list[ArtifactState | None] = [None] * len(record.tasks)
        for i, (_, relpath) in enumerate(record.tasks):
            if has_folder(relpath):
                if done(relpath) and done.problem(relpath) is None:
                    out[i] = ArtifactState.BUILT
                continue
            entry = ended.get(str(i))
            if entry is not None:
                key = id(entry)
                if key not in by_entry:
                    state = RECORDED_ENDS.get(entry.get("state"))
                    by_entry[key] = state if state not in PROBLEMS else None
                out[i] = by_entry[key]
        return out
