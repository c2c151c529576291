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
from ...errors import SchedulerQueryError, SubmissionError
from ...launching import EventKind, LaunchContext, LaunchEvent
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
from ..waits import OnWait, SubmitWait
from . import budget, deps, limits, pending
from .client import SlurmClient, SubmissionUncertain, merge
from .options import option_text, slurm_options
from .script import render_script
from .site import SiteLimits

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
        self.site = SiteLimits(self.client)  # limits, read once when needed

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
        problems = self._limit_problems(group)
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / paths.SCRIPT
            script.write_text(self._script("drylaunch-check", group,
                                           f"0-{len(group.tasks) - 1}", tmp, tmp, "python3",
                                           {}))
            verdict = self.client.test_only(str(script))
        if verdict:
            lines.append(f"slurm says: {verdict}")
            problems.append(f"stage '{group.stage}' {group.resources.summary()}: {verdict}")
        elif problems:
            lines.append("slurm --test-only: accepted, but over the site's limits (below); "
                         "set them in the artifact's get_requirements() or config.json's "
                         "default_slurm_args, or `--set KEY=VALUE` for one launch")
        else:
            lines.append("slurm --test-only: accepted; within the site's limits")
        return Description(tuple(lines), tuple(problems))

    def _limit_problems(self, group: Group) -> list[str]:
        """The group's time, CPUs and GPUs against its partition's limits (and its QOS's, when
        accounting can be asked), whatever ``EnforcePartLimits`` says: with Slurm's default (NO)
        such a job is accepted, even by ``--test-only``, and then pends forever. Each problem
        names an artifact and the fix."""
        try:
            parts = self.site.partitions()
        except SchedulerQueryError:
            return []  # --test-only reports what is wrong with the controller
        res = group.resources
        reqs = dict(res.requirements)
        name = reqs.get("partition")
        part = (parts.get(str(name)) if name is not None
                else next((p for p in parts.values() if p.default), None))
        nodes = reqs.get("nodes")
        found = [] if part is None else limits.check_job(
            part, res.time_s, res.cpus, res.gpus, qos=self._qos_of(reqs),
            nodes=nodes if isinstance(nodes, int) and nodes > 0 else 1)
        first, more = group.tasks[0].relpath, len(group.tasks) - 1
        who = f"artifact {first}" + (f" and {more} more like it" if more else "")
        return [f"stage '{group.stage}', {who}: {p.replace('the job asks', 'it asks')}; "
                "Slurm would accept it and leave it queued, which never clears on its own"
                for p in found]

    def _qos_of(self, reqs: Mapping[str, Scalar]) -> limits.QosLimits | None:
        """The QOS a job would run under: its ``qos``, else the default QOS of the user's
        association (with its ``account``); None when that cannot be told or read."""
        qos = self.site.qos_limits()
        name = reqs.get("qos")
        if name is None and qos:
            account = reqs.get("account")
            defaults = {a.default_qos for a in self.site.associations()
                        if a.user and a.default_qos and account in (None, a.account)}
            name = defaults.pop() if len(defaults) == 1 else None
        return qos.get(str(name)) if name is not None else None

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
        for n, (arr, share) in enumerate(zip(arrays, shares, strict=True)):
            chunk_no = done_in_group.get(arr.group_no, 0)
            done_in_group[arr.group_no] = chunk_no + 1
            after = ids[share.after] if share.after is not None else None
            record = self._submit_array(ctx, arr, chunk_no, by_ref, share.throttle, after,
                                        position=(n + 1, len(arrays)))
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
                      after: str | None = None, position: tuple[int, int] = (1, 1)
                      ) -> JobRecord:
        """Submit one array (``throttle``: its share of the launch's budget; ``after``: a job
        it must also wait for, to keep that budget; ``position``: n of m submissions, for the
        progress reported while Slurm is slow) and return its record."""
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
            job_id = self.client.submit(script, job_name=name, extra_args=extra,
                                        on_wait=_waiting(ctx, job.record, position))
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
        """Task states: one squeue for all the records, then one sacct only about the jobs
        that have a task whose end is not recorded and that squeue does not show live (it
        ended, or the controller forgot it); none at all while every such task is live."""
        mine = {r.job_id: r for r in records if r.job_id}
        if not mine:
            return {}
        queued = self.client.queue_states(list(mine))
        ask = _to_account(mine, queued)
        states = merge(queued, self.client.accounted_states(ask)) if ask else queued
        out = pending.explain_pending(self.site, records, _keyed(states, mine))
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


def _waiting(ctx: LaunchContext, record: JobRecord, position: tuple[int, int]) -> OnWait:
    """Pass the client's waits on as the launch's progress, naming the submission."""
    def report(wait: SubmitWait) -> None:
        ctx.progress(LaunchEvent(EventKind.WAITING, total=position[1], record=record,
                                 wait=wait, position=position[0]))

    return report


def _to_account(records: Mapping[str, JobRecord], queued: Mapping[str, TaskStatus]
                ) -> list[str]:
    """The jobs with a task whose end is not recorded and that squeue does not show live
    (it ended, or the controller forgot it): only sacct can say how those ended."""
    live: dict[str, int] = {}
    for text, status in queued.items():
        if status.state.live:
            job_id = text.rpartition("_")[0]
            live[job_id] = live.get(job_id, 0) + 1
    out = []
    for job_id, rec in records.items():
        if len(rec.ended) >= len(rec.tasks):
            continue
        if not rec.ended and live.get(job_id, 0) >= len(rec.tasks):
            continue  # nothing recorded and every task live (the common case, counted)
        if any(str(i) not in rec.ended and not _live(queued.get(f"{job_id}_{a}"))
               for i, a in enumerate(rec.array_indices or range(len(rec.tasks)))):
            out.append(job_id)
    return out


def _live(status: TaskStatus | None) -> bool:
    return status is not None and status.state.live


def _keyed(states: Mapping[str, TaskStatus], records: Mapping[str, JobRecord]
           ) -> dict[TaskKey, TaskStatus]:
    """Statuses keyed by task position (``TaskKey``), held tasks marked. The rows of an array
    not yet split share one status object, so ``_with_hold`` is asked once per object unless
    it changes something (a held task's hint names the task). A job answered only by its plain
    id (sacct keeps an array cancelled while wholly pending that way, for good, once the
    controller forgot it) gives that answer to each of its tasks without one of its own."""
    positions = {job_id: {a: i for i, a in enumerate(r.array_indices)}
                 for job_id, r in records.items() if r.array_indices}
    out: dict[TaskKey, TaskStatus] = {}
    unchanged: set[int] = set()  # ids of status objects _with_hold leaves alone
    for text, status in states.items():
        job_id, sep, index = text.rpartition("_")
        if not (sep and job_id and index.isdigit()):
            continue
        at, number = positions.get(job_id), int(index)
        key = TaskKey(job_id, at.get(number, number) if at else number)
        if id(status) in unchanged:
            out[key] = status
            continue
        out[key] = marked = _with_hold(TaskKey(job_id, number), status)  # Slurm's own name
        if marked is status:
            unchanged.add(id(status))
    for job_id, rec in records.items():  # an array accounting knows only as a whole: an
        whole = states.get(job_id)        # array cancelled before any task was split off
        if whole is not None:
            for i in range(len(rec.tasks)):
                out.setdefault(TaskKey(job_id, i), whole)
    return out


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
