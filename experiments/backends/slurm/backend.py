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
from ...bootstrap import PACKAGE_PARENT
from ...config import Config
from ...errors import SubmissionError
from ...launching import LaunchContext
from ...plan import Group, Plan
from ...plan.lanes import MAX_LANES, ArrayLayout, Wait, Where, layout_plan
from ...plan.packs import PackFit, fit_pack
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
from .allowance import Allowance, Fit, allowance_for, fit_packs
from .client import SlurmClient, SubmissionUncertain
from .limits import format_time
from .options import Option, option_text, slurm_options
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
        fit = self.pack_fit(group.resources)
        options = group.resources.options
        if fit.size > 1 and fit.time_s is not None:
            options = tuple(with_time(options, fit.time_s))
        lines = ["sbatch " + " ".join(option_text(o) for o in options)
                 + (f" --array=…%{throttle}" if throttle else "")]
        if group.resources.pack > 1:
            lines.append(describe_pack(group.resources.pack, fit))
        if not validate:
            return Description(tuple(lines))
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / paths.SCRIPT
            tasks = -(-len(group.tasks) // fit.size)
            script.write_text(self._script("drylaunch-check", group, f"0-{tasks - 1}", tmp, tmp,
                                           "python3", {},
                                           time_s=fit.time_s if fit.size > 1 else None))
            verdict = self.client.test_only(str(script))
        if verdict:
            lines.append(f"slurm says: {verdict}")
            return Description(tuple(lines), (f"stage '{group.stage}' "
                                              f"{group.resources.summary()}: {verdict}",))
        return Description((*lines, "slurm --test-only: accepted"))

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
        (:mod:`.allowance`)."""
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
        limits = self.client.submit_limits()
        if limits is None:
            return None
        assocs, qos = limits
        pairs = {(_text(dict(g.resources.requirements).get("account")),
                  _text(dict(g.resources.requirements).get("qos"))) for g in plan.groups}
        if not any(allowance_for(assocs, qos, 0, *pair) for pair in pairs):
            return None  # no submit limit applies: no need to count the user's jobs
        current = self.client.live_task_count()
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
        limits = self.client.partition_limits()
        asked = dict(res.requirements).get("partition")
        names = str(asked).split(",") if asked else [n for n, p in limits.items() if p.default]
        found = [limits[n] for n in names if n in limits]
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
        shares = budget.split([a.task_count for a in arrays],
                              [a.group.resources.max_parallel for a in arrays], ctx.max_running)
        done_in_group: dict[int, int] = {}
        ids: list[str] = []
        for arr, share in zip(arrays, shares, strict=True):
            chunk_no = done_in_group.get(arr.group_no, 0)
            done_in_group[arr.group_no] = chunk_no + 1
            after = ids[share.after] if share.after is not None else None
            record = self._submit_array(ctx, arr, chunk_no, by_ref, share.throttle, after,
                                        got.fits[arr.group_no])
            by_ref[arr.ref] = record
            ids.append(record.job_id or "")
        return ctx.submitted

    def _submit_array(self, ctx: LaunchContext, arr: ArrayLayout, chunk_no: int,
                      by_ref: Mapping[str, JobRecord], throttle: int | None = None,
                      after: str | None = None, fit: PackFit = PackFit(1)) -> JobRecord:
        """Submit one array (``throttle``: its share of the launch's budget; ``after``: a job
        it must also wait for, to keep that budget; ``fit``: its group's pack and that pack's
        time limit) and return its record."""
        group = arr.group
        name = ctx.job_name(group, arr.group_no, chunk_no)
        upstream = [by_ref[r] for r in arr.upstream if r in by_ref]
        up_ids = [r.job_id for r in upstream if r.job_id]
        job = ctx.prepare(group, arr.tasks, name, NAME, indices=arr.indices,
                          depends_on=up_ids)
        text = self._script(name, group, arr.array_spec(), job.record.spec_dir,
                            job.record.log_dir, ctx.python, ctx.job_env(group), throttle,
                            ctx.setup_lines(group), fit.time_s if arr.pack > 1 else None)
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
        positions: dict[tuple[str, int], list[int]] = {}
        for r in records:
            if r.job_id and r.array_indices:  # lanes and packs: positions differ from indices
                for i in range(len(r.tasks)):
                    positions.setdefault((r.job_id, r.array_index(i)), []).append(i)
        out: dict[TaskKey, TaskStatus] = {}
        for text, status in (self.client.query(ids) if ids else {}).items():
            key = TaskKey.parse(text)
            if key is None:
                continue
            for i in positions.get((key.job_id, key.index), [key.index]):  # a pack: each one
                out[TaskKey(key.job_id, i)] = _with_hold(TaskKey(key.job_id, i), status)
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
    return sorted([o for o in options if o[0] != "time"] + [("time", format_time(time_s))])


def describe_pack(asked: int, fit: PackFit) -> str:
    """What drylaunch says about a packed group: how many per task, the time, and why."""
    time = f", --time={format_time(fit.time_s)} per task" if fit.time_s is not None else (
        ", --time left to the artifact's own (no `time` requirement)")
    line = f"pack: up to {fit.size} artifact(s) per task{time}"
    return f"{line} ({fit.why})" if fit.why else line
