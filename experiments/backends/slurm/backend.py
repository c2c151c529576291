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
from dataclasses import dataclass
from pathlib import Path

from ... import _atomic, paths
from ..._faults import crash_point
from ...config.settings import Config
from ...errors import SchedulerQueryError, SubmissionError
from ...launching.context import EventKind, LaunchContext, LaunchEvent
from ...launching.waits import OnWait, SubmitWait
from ...plan import Group, Plan
from ...plan.lanes import MAX_LANES, ArrayLayout, Wait, Where, layout_plan
from ...plan.packs import PackFit, fit_pack
from ...tracking.store import JobRecord
from ...worker.bootstrap import PACKAGE_PARENT
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
from . import budget, deps, limits, pending
from .allowance import Allowance, Fit, allowance_for, fit_packs
from .client import SlurmClient, SubmissionUncertain, merge
from .sbatch_options import Option, option_text, slurm_options
from .script import render_script
from .site_limits import SiteLimits

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
        self._fits: dict[int, tuple[Group, PackFit]] = {}  # the last layout's packs

    def resolve(self, requirements: Mapping[str, Scalar], where: str) -> Resources:
        """Checked sbatch options plus the typed fields; errors name ``where`` and the key."""
        options = slurm_options(requirements, where=where)
        return common_resources(requirements, where, options)

    def _script(self, name: str, group: Group, array_spec: str, spec_dir: str, log_dir: str,
                python: str, env: Mapping[str, str], throttle: int | None = None,
                setup: Sequence[str] = (), time_s: int | None = None) -> str:
        """The batch script; ``time_s``: a pack's own time limit instead of the artifact's."""
        throttle = throttle or group.resources.max_parallel
        array = array_spec + (f"%{throttle}" if throttle else "")
        res = group.resources
        signal = (f"B:{res.checkpoint_signal}@{res.checkpoint_before_s}"
                  if res.checkpoint_before_s else None)
        options = res.options if time_s is None else with_time(res.options, time_s)
        return render_script(job_name=name, options=options, array=array,

                             output=f"{log_dir}/{paths.LOG_PATTERN}", spec_dir=spec_dir,
                             python=python, env={**env, **deps.WORKER_ENV},
                             package_dir=PACKAGE_PARENT, setup=setup, signal=signal)

    # -- drylaunch --------------------------------------------------------------------------
    def describe(self, group: Group, *, validate: bool) -> Description:
        """The sbatch options of a group (and, with ``validate``, Slurm's verdict on it)."""
        throttle = group.resources.max_parallel
        fit = self._fit_of(group)
        options = group.resources.options
        if fit.size > 1 and fit.time_s is not None:
            options = tuple(with_time(options, fit.time_s))
        res = group.resources
        signal = (f" --signal=B:{res.checkpoint_signal}@{res.checkpoint_before_s}"
                  if res.checkpoint_before_s else "")  # as the batch script asks for it
        lines = ["sbatch " + " ".join(option_text(o) for o in options) + signal
                 + (f" --array=…%{throttle}" if throttle else "")]
        if group.resources.pack > 1:
            lines.append(describe_pack(group.resources.pack, fit))
        if not validate:
            return Description(tuple(lines))
        problems = self._limit_problems(group)
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / paths.SCRIPT
            tasks = -(-len(group.tasks) // fit.size)
            script.write_text(self._script("drylaunch-check", group, f"0-{tasks - 1}", tmp, tmp,
                                           "python3", {},
                                           time_s=fit.time_s if fit.size > 1 else None))
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
        node_gpus = self.site.node_gpus() if res.gpus and part is not None else None
        found = [] if part is None else limits.check_job(
            part, res.time_s, res.cpus, res.gpus, qos=self._qos_of(reqs),
            nodes=nodes if isinstance(nodes, int) and nodes > 0 else 1,
            node_gpus=None if node_gpus is None else node_gpus.get(part.name, []))
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
        return self.arrays_for(plan, records).arrays

    def layout_notes(self, plan: Plan, records: Sequence[JobRecord]
                     ) -> tuple[list[ArrayLayout], list[str], list[str]]:
        """The arrays, with what drylaunch says about them: notes (packed to fit the submit
        limit, and why) and problems (a launch that cannot fit it)."""
        got = self.arrays_for(plan, records)
        if got.fit is None:
            return got.arrays, [], []
        if got.fit.pack is None:
            return got.arrays, [], [got.fit.note]
        return got.arrays, [got.fit.note], []

    def arrays_for(self, plan: Plan, records: Sequence[JobRecord]) -> Arrays:
        """Each group's pack (its ``pack`` under MaxTime) and the arrays; when their tasks
        would exceed the user's remaining submit allowance, the smallest larger pack that fits
        (:mod:`.allowance`). ``describe(validate=True)`` then checks the packed arrays."""
        got = self._arrays_for(plan, records)
        self._fits = {id(g): (g, f) for g, f in zip(plan.groups, got.fits, strict=True)}
        return got

    def _fit_of(self, group: Group) -> PackFit:
        """The group's pack as the last layout chose it (packed to fit a submit limit), else
        its own ``pack`` under MaxTime."""
        found = self._fits.get(id(group))
        return found[1] if found is not None and found[0] is group else self.pack_fit(
            group.resources)

    def _arrays_for(self, plan: Plan, records: Sequence[JobRecord]) -> Arrays:
        live, size = live_places(plan, records), self.client.max_array_size()

        def lay(fits: Sequence[PackFit]) -> list[ArrayLayout]:
            return layout_plan(plan, size, live, max_lanes=self.max_lanes,
                               packs=[f.size for f in fits])

        fits = [self.pack_fit(g.resources) for g in plan.groups]
        arrays = lay(fits)
        tasks = sum(a.task_count for a in arrays)
        allowance = self._allowance(plan, tasks)
        if allowance is None:
            return Arrays(arrays, fits)
        caps = [self.pack_fit(g.resources, len(g.tasks)).size for g in plan.groups]

        def fits_for(p: int) -> list[PackFit]:
            return [f if f.size >= min(p, cap) else self.pack_fit(g.resources, min(p, cap))
                    for f, cap, g in zip(fits, caps, plan.groups, strict=True)]

        def count(p: int) -> int:
            return sum(a.task_count for a in lay(fits_for(p)))

        fit = fit_packs(count, tasks, plan.task_count, allowance, max(caps))
        if fit.pack is None:
            return Arrays(arrays, fits, fit)
        chosen = fits_for(fit.pack)
        return Arrays(lay(chosen), chosen, fit)

    def _allowance(self, plan: Plan, tasks: int) -> Allowance | None:
        """The user's remaining submit allowance when ``tasks`` would exceed it, else None
        (also when no limit is set or none can be read; the job count is asked only then)."""
        assocs, qos = self.site.associations(), self.site.qos_limits()
        pairs = {(_text(dict(g.resources.requirements).get("account")),
                  _text(dict(g.resources.requirements).get("qos"))) for g in plan.groups}
        if not any(allowance_for(assocs, qos, 0, *pair) for pair in pairs):
            return None  # no submit limit applies: no need to count the user's jobs
        current = self.site.live_task_count()
        found = [a for pair in pairs if (a := allowance_for(assocs, qos, current, *pair))]
        least = min(found, key=lambda a: a.remaining) if found else None
        return least if least is not None and tasks > least.remaining else None

    def pack_fit(self, res: Resources, pack: int | None = None) -> PackFit:
        """A group's pack size (``pack``, default its own) and the pack's time limit, under its
        partition's MaxTime (an artifact without ``time`` counts the partition's DefaultTime,
        as Slurm would); its ``pack_time`` applies to its own pack size only."""
        asked = res.pack if pack is None else pack
        if asked == 1:
            return PackFit(1)
        max_time_s, default_time_s = self._partition_times(res)
        time_s = res.time_s if res.time_s is not None else default_time_s
        return fit_pack(asked, time_s, res.pack_time_s if asked == res.pack else None,
                        max_time_s)

    def _partition_times(self, res: Resources) -> tuple[int | None, int | None]:
        """MaxTime and DefaultTime of the partition(s) the group asks for (the default one if
        none), the strictest when several; None when unlimited or unknown."""
        parts = self.site.partitions()
        asked = dict(res.requirements).get("partition")
        names = str(asked).split(",") if asked else [n for n, p in parts.items() if p.default]
        found = [parts[n] for n in names if n in parts]
        max_times = [p.max_time_s for p in found if p.max_time_s is not None]
        defaults = [p.default_time_s for p in found if p.default_time_s is not None]
        return (min(max_times) if max_times else None, min(defaults) if defaults else None)

    def launch(self, plan: Plan, ctx: LaunchContext) -> list[JobRecord]:
        """Submit every array, upstream first, recording each job as soon as Slurm accepts it.

        With ``launch --max-running``, each array gets its share of the launch's budget
        (:mod:`.budget`): its own throttle, and sometimes an earlier array to wait for.
        """
        records = ctx.store.all_records()
        by_ref: dict[str, JobRecord] = {r.job_id: r for r in records if r.job_id}
        got = self.arrays_for(plan, records)
        if got.fit is not None and got.fit.pack is None:
            raise SubmissionError(f"cannot launch: {got.fit.note}; nothing was submitted")
        arrays = got.arrays
        self._check_job_count(sum(a.task_count for a in arrays))
        shares = budget.split([a.task_count for a in arrays],
                              [a.group.resources.max_parallel for a in arrays], ctx.max_running)
        waits = budget.waits([s.throttle for s in shares], ctx.held, ctx.max_running)
        done_in_group: dict[int, int] = {}
        ids: list[str] = []
        for n, (arr, share) in enumerate(zip(arrays, shares, strict=True)):
            chunk_no = done_in_group.get(arr.group_no, 0)
            done_in_group[arr.group_no] = chunk_no + 1
            after = [ids[w] if isinstance(w, int) else w for w in waits[n]]
            record = self._submit_array(ctx, arr, chunk_no, by_ref, share.throttle, after,
                                        position=(n + 1, len(arrays)),
                                        fit=got.fits[arr.group_no])
            by_ref[arr.ref] = record
            ids.append(record.job_id or "")
        return ctx.submitted

    def _check_job_count(self, tasks: int) -> None:
        """Refuse, before submitting anything, a launch with more array tasks (packs count
        once) than the cluster's ``MaxJobCount``: Slurm counts each array task as a job and
        would make sbatch retry without end once the queue is full, leaving half a launch
        behind."""
        limit = self.client.max_job_count()
        if limit is not None and tasks >= limit:
            raise SubmissionError(
                f"this launch has {tasks:,} tasks, but the cluster holds at most "
                f"MaxJobCount={limit:,} jobs at once (each array task counts as one); nothing "
                "was submitted. Launch fewer stages at a time (or fewer artifacts per stage), or "
                "ask the cluster's administrators to raise MaxJobCount")

    def _submit_array(self, ctx: LaunchContext, arr: ArrayLayout, chunk_no: int,
                      by_ref: Mapping[str, JobRecord], throttle: int | None = None,
                      after: Sequence[str] = (), position: tuple[int, int] = (1, 1),
                      fit: PackFit = PackFit(1)) -> JobRecord:
        """Submit one array (``throttle``: its share of the budget; ``after``: jobs it must
        also wait for, to keep that budget; ``position``: n of m submissions, for the
        progress reported while Slurm is slow; ``fit``: its group's pack and that pack's time
        limit) and return its record."""
        group = arr.group
        name = ctx.job_name(group, arr.group_no, chunk_no)
        upstream = [by_ref[r] for r in arr.upstream if r in by_ref]
        up_ids = [r.job_id for r in upstream if r.job_id]
        job = ctx.prepare(group, arr.tasks, name, NAME, indices=arr.indices,
                          depends_on=up_ids, throttle=throttle or group.resources.max_parallel)
        text = self._script(name, group, arr.array_spec(), job.record.spec_dir,
                            job.record.log_dir, ctx.python, ctx.job_env(group), throttle,
                            ctx.setup_lines(group), fit.time_s if arr.pack > 1 else None)
        script = str(Path(job.record.spec_dir) / paths.SCRIPT)
        _atomic.write_bytes(script, text.encode("utf-8"), durable=False)
        kind = "aftercorr" if arr.wait is Wait.CORR else "afterany"
        waits = [f"{kind}:{':'.join(up_ids)}"] if up_ids else []
        budget_waits = [a for a in after if a not in up_ids]
        if budget_waits:
            waits.append(f"afterany:{':'.join(budget_waits)}")  # all of them ("," is AND)
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
    positions: dict[str, dict[int, list[int]]] = {}
    for job_id, r in records.items():
        if r.array_indices:  # lanes and packs: positions differ from indices
            at = positions[job_id] = {}
            for i, a in enumerate(r.array_indices):
                at.setdefault(a, []).append(i)  # a pack: every artifact of it
    out: dict[TaskKey, TaskStatus] = {}
    unchanged: set[int] = set()  # ids of status objects _with_hold leaves alone
    for text, status in states.items():
        job_id, sep, index = text.rpartition("_")
        if not (sep and job_id and index.isdigit()):
            continue
        where, number = positions.get(job_id), int(index)
        if id(status) not in unchanged:
            marked = _with_hold(TaskKey(job_id, number), status)  # Slurm's own name
            if marked is status:
                unchanged.add(id(status))
            status = marked
        for i in where.get(number, [number]) if where else [number]:
            out[TaskKey(job_id, i)] = status
    for job_id, rec in records.items():  # an array accounting knows only as a whole: an
        whole = states.get(job_id)        # array cancelled before any task was split off
        if whole is not None:
            for i in range(len(rec.tasks)):
                out.setdefault(TaskKey(job_id, i), whole)
    return out


@dataclass(frozen=True)
class Arrays:
    """What a launch submits: the arrays, each group's pack (plan order) and, when the launch
    was packed to fit the user's submit limit (or cannot fit it), why."""

    arrays: list[ArrayLayout]
    fits: list[PackFit]
    fit: Fit | None = None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


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
        packed = rec.packed
        for i, (artifact_id, _) in enumerate(rec.tasks):
            if plan.live_jobs.get(artifact_id) == rec.job_id:
                out[artifact_id] = Where(rec.job_id, rec.array_index(i), packed)
    return out


def with_time(options: Sequence[Option], time_s: int) -> list[Option]:
    """The options with ``--time`` set to ``time_s`` (a pack's limit), kept sorted by name."""
    time = limits.format_time(time_s)
    return sorted([o for o in options if o[0] != "time"] + [("time", time)])


def describe_pack(asked: int, fit: PackFit) -> str:
    """What drylaunch says about a packed group: how many per task, the time, and why."""
    time = (f", --time={limits.format_time(fit.time_s)} per task" if fit.time_s is not None
            else ", --time left to the artifact's own (no `time` requirement)")
    line = f"pack: up to {fit.size} artifact(s) per task{time}"
    return f"{line} ({fit.why})" if fit.why else line
