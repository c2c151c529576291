"""The Slurm backend: the ``Backend`` methods, composed of this package's parts.

Each group is laid out as arrays (:mod:`.layout`, after :mod:`experiments.plan.lanes`). A task
with one dependency still to be built sits in a *lane* at its upstream task's index and waits
for exactly that task (``aftercorr``); other tasks wait (``afterany``) for all tasks of exactly
the arrays holding their dependencies, or for nothing. Workers exit 0 after an ordinary failure
(recorded in ``.status.json``, no done marker) so ``aftercorr`` always releases the
counterpart, whose worker then ends as "dependency failed" at once. What the scheduler kills
would leave counterparts pending ``DependencyNeverSatisfied``: the dying worker cancels them in
its grace period (:mod:`.deps` writes who they are), and ``query`` cancels any it still sees.

The parts: :mod:`.client` runs Slurm's commands, :mod:`.parse` reads their answers,
:mod:`.layout` decides the arrays, :mod:`.validate` describes a group for drylaunch,
:mod:`.script` writes the batch script, :mod:`.budget` shares ``--max-running``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ... import _atomic, paths
from ...config.settings import Config, home
from ...errors import SchedulerQueryError, SubmissionError
from ...launching.launch_context import EventKind, LaunchContext, LaunchEvent
from ...launching.relay import RELAY_REQUIREMENTS, SUBMIT_LIMIT_RE
from ...launching.waits import OnWait, SubmitWait
from ...plan import Group, Plan
from ...plan.lanes import ArrayLayout, Wait
from ...plan.packs import PackFit
from ...resources import Resources, Scalar, common_resources
from ...states import TaskKey, TaskStatus, TaskUsage
from ...tracking.store import JobRecord
from ..base import Description
from . import budget, clusters, deps, pending
from .client import SlurmClient, SubmissionUncertain
from .layout import SlurmLayout
from .parse import keyed, merge, to_account
from .sbatch_options import slurm_options
from .script import job_script
from .site_limits import SiteLimits, cache_file
from .validate import describe as describe_group

NAME = "slurm"


class SlurmBackend:
    """Submits, queries and cancels array jobs through one ``SlurmClient``."""

    name = NAME

    def __init__(self, config: Config, client: SlurmClient | None = None) -> None:
        self.config = config
        self.client = client or SlurmClient()
        self.site = SiteLimits(self.client, cache_file(home()))  # read once when needed
        self.arrays = SlurmLayout(self.client, self.site, config.submit_limit_check_above)

    def resolve(self, requirements: Mapping[str, Scalar], where: str) -> Resources:
        """Checked sbatch options plus the typed fields; errors name ``where`` and the key."""
        options = slurm_options(requirements, where=where)
        return common_resources(requirements, where, options)

    # -- drylaunch (LaysOutArrays) ----------------------------------------------------------
    def describe(self, group: Group, *, validate: bool) -> Description:
        """The sbatch options of a group (and, with ``validate``, Slurm's verdict on it)."""
        return describe_group(group, self.arrays.fit_of(group), self.site, validate=validate)

    def layout(self, plan: Plan, records: Sequence[JobRecord]) -> list[ArrayLayout]:
        """The arrays this backend submits for ``plan`` (drylaunch shows the same)."""
        return self.arrays.arrays_for(plan, records).arrays

    def layout_notes(self, plan: Plan, records: Sequence[JobRecord]
                     ) -> tuple[list[ArrayLayout], list[str], list[str]]:
        """The arrays, with what drylaunch says about them: notes (packed to fit the submit
        limit, and why) and problems (a launch that cannot fit it)."""
        return self.arrays.notes(plan, records)

    # -- launch ---------------------------------------------------------------------------
    def launch(self, plan: Plan, ctx: LaunchContext) -> list[JobRecord]:
        """Submit every array, upstream first, recording each job as soon as Slurm accepts it.

        With ``launch --max-running``, each array gets its share of the launch's budget
        (:mod:`.budget`): its own throttle, and sometimes an earlier array to wait for.
        """
        records = ctx.store.all_records()
        by_ref: dict[str, JobRecord] = {r.job_id: r for r in records if r.job_id}
        got = self.arrays.arrays_for(plan, records)
        if got.fit is not None and got.fit.pack is None:
            raise SubmissionError(f"cannot launch: {got.fit.note}; nothing was submitted")
        arrays = got.arrays
        self.arrays.check_job_count(sum(a.task_count for a in arrays))
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

    def _learn_limits(self) -> None:
        """Read the submit limits into the cache after Slurm refused a submission at one, so
        the next launch packs itself to fit (best effort: the refusal is what matters)."""
        try:
            self.site.refresh_accounting()
        except SchedulerQueryError:
            pass

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
        text = job_script(group, name=name, array=arr.array_spec(),
                          spec_dir=job.record.spec_dir, log_dir=job.record.log_dir,
                          python=ctx.python, env=ctx.job_env(group), throttle=throttle,
                          setup=ctx.setup_lines(group),
                          time_s=fit.time_s if arr.pack > 1 else None)
        script = str(Path(job.record.spec_dir) / paths.SCRIPT)
        _atomic.write_bytes(script, text.encode("utf-8"), durable=False)
        try:
            job_id = self.client.submit(script, job_name=name,
                                        extra_args=_dependency(arr, up_ids, after),
                                        on_wait=_waiting(ctx, job.record, position))
        except SubmissionUncertain:  # may exist: keep the intent for the next launch
            raise
        except SubmissionError as exc:  # refused for sure: the intent must not linger
            ctx.discard(job)
            if SUBMIT_LIMIT_RE.search(str(exc)):  # at the submit limit: the next round fits it
                self._learn_limits()
            raise
        record = ctx.confirm(job, job_id, requeue_window_s=self.client.min_job_age_s(),
                             cluster=self.client.cluster_of.get(job_id)
                             or self.client.cluster_name())
        if arr.wait is Wait.CORR and upstream:
            deps.write_dependents(upstream[0], record)
        return record

    # -- relays (SubmitsRelays, see experiments.launching.relay) ------------------------------
    def relay_resources(self, like: Mapping[str, Scalar]) -> Resources:
        """What a relay asks for: one CPU for a few minutes, under ``like``'s account, QOS
        and partition."""
        return self.resolve({**like, **RELAY_REQUIREMENTS}, "relay")

    def wave_room(self, plan: Plan, records: Sequence[JobRecord]) -> int | None:
        """How many tasks of ``plan`` the user's submit allowance leaves room for when the
        plan does not fit it even packed (None: it fits, perhaps packed)."""
        got = self.arrays.arrays_for(plan, records)
        if got.fit is None or got.fit.pack is not None:
            return None
        allowance = self.arrays.allowance(plan, got.fit.tasks)
        return None if allowance is None else max(0, allowance.remaining)

    def cluster_name(self) -> str | None:
        """The cluster this machine's commands reach (a relay probe's verdict is kept per
        cluster)."""
        return self.client.cluster_name()

    def submit_relay(self, script: str, name: str, after: Sequence[str],
                     resources: Resources, begin_minutes: int = 0) -> str:
        """Queue a relay's script once every job in ``after`` has ended (whatever its end),
        and not before ``begin_minutes`` from now."""
        args = resources.option_words()
        if begin_minutes:
            args.append(f"--begin=now+{begin_minutes}minutes")
        if after:
            args.append(f"--dependency=afterany:{':'.join(after)}")
        return self.client.submit(script, job_name=name, extra_args=args)

    def requeue_relay(self, job_id: str) -> None:
        """Put the running relay ``job_id`` back in the queue (``scontrol requeue``: Slurm
        starts it again about two minutes later, same id, its log appended to)."""
        self.client.ask(["scontrol", "requeue", f"{job_id}_0"])

    def relay_after(self, job_id: str, after: Sequence[str]) -> None:
        """Make the queued relay ``job_id`` wait (``afterany``) for exactly ``after``."""
        self.client.ask(["scontrol", "update", f"jobid={job_id}",
                         f"dependency=afterany:{':'.join(after)}"])

    # -- queries --------------------------------------------------------------------------
    def query(self, records: Sequence[JobRecord]) -> dict[TaskKey, TaskStatus]:
        """Task states: one squeue for all the records, then one sacct only about the jobs
        that have a task whose end is not recorded and that squeue does not show live (it
        ended, or the controller forgot it); none at all while every such task is live.

        Records of another cluster are not asked (their tasks are ELSEWHERE); a row whose job
        name is not the record's is another job's that now has the id (NOT_OURS): see
        :mod:`.clusters`."""
        asked, others = clusters.split(records, self.client.cluster_name())
        out = clusters.elsewhere(others)
        mine = {r.job_id: r for r in asked if r.job_id}
        if not mine:
            return out
        names = {job_id: r.name for job_id, r in mine.items()}
        queued, foreign = self.client.named_queue_states(list(mine), names)
        ask = to_account({j: r for j, r in mine.items() if j not in foreign}, queued)
        if ask:
            accounted, later = self.client.named_accounted_states(ask, names)
            held = {key.partition("_")[0] for key in queued}  # squeue knows them as ours:
            foreign.update((j, n) for j, n in later.items() if j not in held)  # sacct lags
            queued = merge(queued, accounted)
        found = pending.explain_pending(self.site, asked, keyed(queued, mine))
        out.update(deps.end_never_satisfied(self.client, asked, found))
        out.update(clusters.not_ours(mine, foreign))
        return out

    def usage(self, records: Sequence[JobRecord]) -> dict[TaskKey, TaskUsage]:
        """Accounting for every task of ``records``: one sacct call (KeepsAccounts); none for
        records of another cluster (this cluster's accounting would answer for its own job of
        the same id)."""
        records = clusters.split(records, self.client.cluster_name())[0]
        ids = [r.job_id for r in records if r.job_id]
        out: dict[TaskKey, TaskUsage] = {}
        for text, used in (self.client.usage(ids) if ids else {}).items():
            key = TaskKey.parse(text)
            if key is not None:
                out[key] = used
        return out

    def cancel(self, records: Sequence[JobRecord]) -> None:
        """Cancel every task of ``records`` with one scancel (never a record of another
        cluster: its id may name another job here)."""
        records = clusters.split(records, self.client.cluster_name())[0]
        ids = [r.job_id for r in records if r.job_id]
        for r in records:  # dying upstream workers then leave these tasks to the user's cancel
            deps.mark_cancel_requested(r)
        if ids:
            self.client.cancel(ids)

    def find_by_name(self, name: str) -> list[str]:
        """Ids of this user's jobs called ``name``."""
        return self.client.find_by_name(name)

    # -- SubmissionTracking (for reconcile) -----------------------------------------------
    def submissions_in_flight(self, name: str) -> list[int]:
        """Pids of sbatch processes on this machine still submitting ``name``."""
        return self.client.sbatch_in_flight(name)

    def live_jobs_by_name(self) -> dict[str, list[str]]:
        """This user's live jobs by name (one squeue)."""
        return self.client.live_jobs_by_name()

    def lookup_settle_s(self) -> float:
        """A submission stuck in a frozen controller is processed within about one
        MessageTimeout of it answering again; wait that long (plus a margin) before trusting
        a look-up that found nothing."""
        return self.client.settle()



def _dependency(arr: ArrayLayout, up_ids: Sequence[str], after: Sequence[str]) -> list[str]:
    """sbatch's ``--dependency`` for an array: on the jobs holding its dependencies
    (``aftercorr`` in a lane, else ``afterany``), and on ``after`` (the project's budget: slots
    held by arrays of this launch or of earlier ones)."""
    kind = "aftercorr" if arr.wait is Wait.CORR else "afterany"
    waits = [f"{kind}:{':'.join(up_ids)}"] if up_ids else []
    budget_waits = [a for a in after if a not in up_ids]
    if budget_waits:
        waits.append(f"afterany:{':'.join(budget_waits)}")  # all of them (Slurm's "," is AND)
    return [f"--dependency={','.join(waits)}"] if waits else []


def _waiting(ctx: LaunchContext, record: JobRecord, position: tuple[int, int]) -> OnWait:
    """Pass the client's waits on as the launch's progress, naming the submission."""
    def report(wait: SubmitWait) -> None:
        ctx.progress(LaunchEvent(EventKind.WAITING, total=position[1], record=record,
                                 wait=wait, position=position[0]))

    return report
