"""The Slurm backend: each group is laid out as arrays (:mod:`experiments.plan.lanes`).

A task with one dependency still to be built sits in a *lane* at its upstream task's index and
waits for exactly that task (``aftercorr``); other tasks wait (``afterany``) for all tasks of
exactly the arrays holding their dependencies, or for nothing. Workers exit 0 after an ordinary
failure (recorded in ``.status.json``, no done marker) so ``aftercorr`` always releases the
counterpart, whose worker then ends as "dependency failed" at once. What the scheduler kills
would leave counterparts pending ``DependencyNeverSatisfied``: the dying worker cancels them in
its grace period (:mod:`.deps` writes who they are), and ``query`` cancels any it still sees.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ... import _atomic, paths
from ..._faults import crash_point
from ...bootstrap import PACKAGE_PARENT
from ...config import Config
from ...errors import SubmissionError
from ...launching import LaunchContext
from ...plan import Group, Plan
from ...plan.lanes import MAX_LANES, ArrayLayout, Wait, Where, layout_plan
from ...store import JobRecord
from ..base import (
    Description,
    JobState,
    Resources,
    Scalar,
    TaskKey,
    TaskStatus,
    TaskUsage,
    common_resources,
)
from . import budget, deps
from .client import SlurmClient, SubmissionUncertain
from .options import option_text, slurm_options
from .script import render_script

NAME = "slurm"


class SlurmBackend:
    """Submits, queries and cancels array jobs through one ``SlurmClient``."""

    name = NAME
    # Lanes per upstream array beyond which a group waits for whole arrays instead; 0 gives the
    # rule before lanes (every dependent array waits for all of its upstream arrays).
    max_lanes = MAX_LANES

    def __init__(self, config: Config, client: SlurmClient | None = None) -> None:
        self.config = config
        self.client = client or SlurmClient()

    def resolve(self, requirements: Mapping[str, Scalar], where: str) -> Resources:
        """Checked sbatch options plus the typed fields; errors name ``where`` and the key."""
        options = slurm_options(requirements, where=where)
        return common_resources(requirements, where, options)

    def _script(self, name: str, group: Group, array_spec: str, spec_dir: str, log_dir: str,
                python: str, env: Mapping[str, str], throttle: int | None = None,
                setup: Sequence[str] = ()) -> str:
        throttle = throttle or group.resources.max_parallel
        array = array_spec + (f"%{throttle}" if throttle else "")
        res = group.resources
        signal = (f"B:{res.checkpoint_signal}@{res.checkpoint_before_s}"
                  if res.checkpoint_before_s else None)
        return render_script(job_name=name, options=res.options, array=array,
                             output=f"{log_dir}/{paths.LOG_PATTERN}", spec_dir=spec_dir,
                             python=python, env={**env, **deps.WORKER_ENV},
                             package_dir=PACKAGE_PARENT, setup=setup, signal=signal)

    # -- drylaunch --------------------------------------------------------------------------
    def describe(self, group: Group, *, validate: bool) -> Description:
        """The sbatch options of a group (and, with ``validate``, Slurm's verdict on it)."""
        throttle = group.resources.max_parallel
        lines = ["sbatch " + " ".join(option_text(o) for o in group.resources.options)
                 + (f" --array=…%{throttle}" if throttle else "")]
        if not validate:
            return Description(tuple(lines))
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / paths.SCRIPT
            script.write_text(self._script("drylaunch-check", group,
                                           f"0-{len(group.tasks) - 1}", tmp, tmp, "python3",
                                           {}))
            verdict = self.client.test_only(str(script))
        if verdict:
            lines.append(f"slurm says: {verdict}")
            return Description(tuple(lines), (f"stage '{group.stage}' "
                                              f"{group.resources.summary()}: {verdict}",))
        return Description((*lines, "slurm --test-only: accepted"))

    # -- launch ---------------------------------------------------------------------------
    def layout(self, plan: Plan, records: Sequence[JobRecord]) -> list[ArrayLayout]:
        """The arrays this backend submits for ``plan`` (drylaunch shows the same)."""
        return layout_plan(plan, self.client.max_array_size(), live_places(plan, records),
                           max_lanes=self.max_lanes)

    def launch(self, plan: Plan, ctx: LaunchContext) -> list[JobRecord]:
        """Submit every array, upstream first, recording each job as soon as Slurm accepts it.

        With ``launch --max-running``, each array gets its share of the launch's budget
        (:mod:`.budget`): its own throttle, and sometimes an earlier array to wait for.
        """
        records = ctx.store.all_records()
        by_ref: dict[str, JobRecord] = {r.job_id: r for r in records if r.job_id}
        arrays = self.layout(plan, records)
        self._check_job_count(plan)
        shares = budget.split([len(a.tasks) for a in arrays],
                              [a.group.resources.max_parallel for a in arrays], ctx.max_running)
        done_in_group: dict[int, int] = {}
        ids: list[str] = []
        for arr, share in zip(arrays, shares, strict=True):
            chunk_no = done_in_group.get(arr.group_no, 0)
            done_in_group[arr.group_no] = chunk_no + 1
            after = ids[share.after] if share.after is not None else None
            record = self._submit_array(ctx, arr, chunk_no, by_ref, share.throttle, after)
            by_ref[arr.ref] = record
            ids.append(record.job_id or "")
        return ctx.submitted

    def _check_job_count(self, plan: Plan) -> None:
        """Refuse, before submitting anything, a launch with more tasks than the cluster's
        ``MaxJobCount``: Slurm counts each array task as a job and would make sbatch retry
        without end once the queue is full, leaving half a launch behind."""
        limit = self.client.max_job_count()
        if limit is not None and plan.task_count >= limit:
            raise SubmissionError(
                f"this launch has {plan.task_count:,} tasks, but the cluster holds at most "
                f"MaxJobCount={limit:,} jobs at once (each array task counts as one); nothing "
                "was submitted. Launch fewer stages at a time (or fewer artifacts per stage), or "
                "ask the cluster's administrators to raise MaxJobCount")

    def _submit_array(self, ctx: LaunchContext, arr: ArrayLayout, chunk_no: int,
                      by_ref: Mapping[str, JobRecord], throttle: int | None = None,
                      after: str | None = None) -> JobRecord:
        """Submit one array (``throttle``: its share of the launch's budget; ``after``: a job
        it must also wait for, to keep that budget) and return its record."""
        group = arr.group
        name = ctx.job_name(group, arr.group_no, chunk_no)
        upstream = [by_ref[r] for r in arr.upstream if r in by_ref]
        up_ids = [r.job_id for r in upstream if r.job_id]
        job = ctx.prepare(group, arr.tasks, name, NAME, indices=arr.indices,
                          depends_on=up_ids)
        text = self._script(name, group, arr.array_spec(), job.record.spec_dir,
                            job.record.log_dir, ctx.python, ctx.job_env(group), throttle,
                            ctx.setup_lines(group))
        script = str(Path(job.record.spec_dir) / paths.SCRIPT)
        _atomic.write_bytes(script, text.encode("utf-8"), durable=False)
        kind = "aftercorr" if arr.wait is Wait.CORR else "afterany"
        waits = [f"{kind}:{':'.join(up_ids)}"] if up_ids else []
        if after and after not in up_ids:
            waits.append(f"afterany:{after}")  # all of them (Slurm's "," is AND)
        extra = [f"--dependency={','.join(waits)}"] if waits else []
        crash_point("before-sbatch")
        try:
            job_id = self.client.submit(script, job_name=name, extra_args=extra)
        except SubmissionUncertain:  # may exist: keep the intent for the next launch
            raise
        except SubmissionError:  # refused for sure: the intent must not linger
            ctx.discard(job)
            raise
        crash_point("after-sbatch")
        record = ctx.confirm(job, job_id)
        if arr.wait is Wait.CORR and upstream:
            deps.write_dependents(upstream[0], record)
        return record

    # -- queries --------------------------------------------------------------------------
    def query(self, records: Sequence[JobRecord]) -> dict[TaskKey, TaskStatus]:
        """Task states: one squeue and at most one sacct call for all the records."""
        ids = [r.job_id for r in records if r.job_id]
        positions = {(r.job_id, r.array_index(i)): i for r in records if r.job_id
                     for i in range(len(r.tasks))}
        out: dict[TaskKey, TaskStatus] = {}
        for text, status in (self.client.query(ids) if ids else {}).items():
            key = TaskKey.parse(text)
            if key is not None:
                key = TaskKey(key.job_id, positions.get((key.job_id, key.index), key.index))
                out[key] = _with_hold(key, status)
        return deps.end_never_satisfied(self.client, records, out)

    def usage(self, records: Sequence[JobRecord]) -> dict[TaskKey, TaskUsage]:
        """Accounting for every task of ``records``: one sacct call."""
        ids = [r.job_id for r in records if r.job_id]
        out: dict[TaskKey, TaskUsage] = {}
        for text, used in (self.client.usage(ids) if ids else {}).items():
            key = TaskKey.parse(text)
            if key is not None:
                out[key] = used
        return out

    def cancel(self, records: Sequence[JobRecord]) -> None:
        ids = [r.job_id for r in records if r.job_id]
        for r in records:  # dying upstream workers then leave these tasks to the user's cancel
            deps.mark_cancel_requested(r)
        if ids:
            self.client.cancel(ids)

    def find_by_name(self, name: str) -> list[str]:
        return self.client.find_by_name(name)

    # -- SubmissionTracking (for reconcile) -----------------------------------------------
    def submissions_in_flight(self, name: str) -> list[int]:
        return self.client.sbatch_in_flight(name)

    def live_jobs_by_name(self) -> dict[str, list[str]]:
        return self.client.live_jobs_by_name()

    def lookup_settle_s(self) -> float:
        """A submission stuck in a frozen controller is processed within about one
        MessageTimeout of it answering again; wait that long (plus a margin) before trusting
        a look-up that found nothing."""
        return self.client.settle()


def _with_hold(key: TaskKey, status: TaskStatus) -> TaskStatus:
    """Mark a task Slurm holds (it will never start on its own) and say how to release it."""
    if status.state is not JobState.PENDING or "held" not in status.reason.lower():
        return status
    return TaskStatus(status.state, status.raw, status.reason, status.exit_code, held=True,
                      hint=f"held by the scheduler ({status.reason}); it will not start "
                           f"until `scontrol release {key}`")


def live_places(plan: Plan, records: Sequence[JobRecord]) -> dict[str, Where]:
    """Where each artifact the plan depends on is held by a live job: job id and array index."""
    out: dict[str, Where] = {}
    for rec in records:
        if not rec.job_id:
            continue
        for i, (artifact_id, _) in enumerate(rec.tasks):
            if plan.live_jobs.get(artifact_id) == rec.job_id:
                out[artifact_id] = Where(rec.job_id, rec.array_index(i))
    return out
