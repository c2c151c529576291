"""Which arrays a launch submits on this cluster, and whether they fit its limits.

Each group's *pack* (its ``pack`` requirement, made smaller where the pack would exceed its
partition's ``MaxTime``; an artifact without ``time`` counts the partition's ``DefaultTime``, as
Slurm would) and the arrays of :func:`experiments.plan.lanes.layout_plan` with those packs.

Every array task counts against ``MaxSubmitJobsPerUser`` (a QOS's, else the association's
``MaxSubmitJobs``), so a 500-artifact grid under a limit of 100 would be refused half-way. A
launch whose array tasks exceed the user's remaining allowance is packed instead: the smallest
pack size (applied to every group, never beyond what its partition's ``MaxTime`` allows) whose
array tasks fit. :func:`allowance_for` picks the limit from ``sacctmgr``'s rows and
:func:`fit_packs` the pack size (both pure); :class:`SlurmLayout` asks the site and lays out the
arrays. A launch with more array tasks than the cluster's ``MaxJobCount`` is refused before
anything is submitted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ...config.settings import SUBMIT_LIMIT_CHECK_ABOVE
from ...errors import SubmissionError
from ...plan import Group, Plan
from ...plan.lanes import MAX_LANES, ArrayLayout, Where, layout_plan
from ...plan.packs import PackFit, fit_pack, smallest_fitting
from ...resources import Resources
from ...tracking.store import JobRecord
from .client import SlurmClient
from .limits import AssocLimits, QosLimits, remaining_submit_allowance
from .site_limits import SiteLimits


@dataclass(frozen=True)
class Allowance:
    """How many more jobs (array tasks) the user may submit, and which limit says so."""

    remaining: int
    limit: str      # "MaxSubmitJobsPerUser=100 of QOS normal"
    current: int    # the user's jobs (tasks) already pending or running


def allowance_for(assocs: Sequence[AssocLimits], qos: Mapping[str, QosLimits], current: int,
                  account: str | None = None, qos_name: str | None = None) -> Allowance | None:
    """The user's remaining submit allowance for jobs under ``account`` and ``qos_name`` (the
    association's default QOS when None), the strictest when several associations could apply
    (no account named: any of the user's); None when no limit is set or known.

    ``assocs`` are the user's association rows (``sacctmgr show assoc user=$USER``): a limit
    set only on a parent account's row is not seen.
    """
    best: Allowance | None = None
    for a in assocs:
        if not a.user or (account is not None and a.account != account):
            continue
        q = qos.get(qos_name or a.default_qos or (a.qos[0] if len(a.qos) == 1 else "normal"))
        remaining = remaining_submit_allowance([q, a] if q else [a], current)
        if remaining is None:
            continue
        limit = (f"MaxSubmitJobsPerUser={q.max_submit_jobs_per_user} of QOS {q.name}"
                 if q is not None and q.max_submit_jobs_per_user is not None
                 else f"MaxSubmitJobs={a.max_submit_jobs} of account {a.account}")
        if best is None or remaining < best.remaining:
            best = Allowance(remaining, limit, current)
    return best


@dataclass(frozen=True)
class Fit:
    """The pack size that fits the allowance (None: nothing does) and the line saying so."""

    pack: int | None
    tasks: int       # array tasks of the launch with that pack (or with the largest tried)
    note: str


def fit_packs(count: Callable[[int], int], unpacked: int, artifacts: int,
              allowance: Allowance, largest: int) -> Fit:
    """The smallest pack size ``p`` (``count(p)``: the launch's array tasks with every group
    packed by ``p`` as far as its MaxTime allows) whose tasks fit ``allowance``; the search
    starts at ``artifacts / remaining`` (no smaller pack can fit)."""
    why = (f"{unpacked} array task(s) would exceed your remaining submit allowance of "
           f"{allowance.remaining} ({allowance.limit}; {allowance.current} of your jobs "
           "queued or running)")
    if allowance.remaining < 1:
        return Fit(None, unpacked, f"{why}: wait for some of your jobs to end")
    pack = smallest_fitting(count, allowance.remaining, largest,
                            -(-artifacts // allowance.remaining))
    if pack is None:
        return Fit(None, count(largest), f"{why}, even packed as far as the partitions' "
                                         f"MaxTime allows ({count(largest)} task(s)): wait for "
                                         "some of your jobs to end, or launch fewer artifacts "
                                         "at a time")
    tasks = count(pack)
    return Fit(pack, tasks, f"{why}: packed up to {pack} artifact(s) per task, {tasks} "
                            "task(s)")


@dataclass(frozen=True)
class Arrays:
    """What a launch submits: the arrays, each group's pack (plan order) and, when the launch
    was packed to fit the user's submit limit (or cannot fit it), why."""

    arrays: list[ArrayLayout]
    fits: list[PackFit]
    fit: Fit | None = None


class SlurmLayout:
    """Lays out a plan's arrays for one cluster, asking its limits through one client."""

    # Lanes per upstream array beyond which a group waits for whole arrays instead; 0 gives the
    # rule before lanes (every dependent array waits for all of its upstream arrays).
    max_lanes = MAX_LANES

    def __init__(self, client: SlurmClient, site: SiteLimits,
                 check_above: int = SUBMIT_LIMIT_CHECK_ABOVE) -> None:
        self.client = client
        self.site = site
        self._fits: dict[int, tuple[Group, PackFit]] = {}  # the last layout's pack per group
        self.check_above = check_above  # launches this small skip reading the limits
        self._last: tuple[Plan, dict[str, Where], Arrays] | None = None  # the last layout

    def notes(self, plan: Plan, records: Sequence[JobRecord]
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
        (:func:`fit_packs`). Remembered, so ``drylaunch --validate`` checks the packed arrays
        that ``launch`` would submit (:meth:`fit_of`).

        Laid out once per plan: asked again about the same plan object with the same live
        places (a launch checks the allowance, then submits), the last layout is returned as
        it was (a million tasks take seconds to lay out; the allowance read moments ago)."""
        live = live_places(plan, records)
        last = self._last
        if last is not None and last[0] is plan and last[1] == live:
            return last[2]
        got = self._arrays_for(plan, live)
        self._fits = {id(g): (g, f) for g, f in zip(plan.groups, got.fits, strict=True)}
        self._last = (plan, live, got)
        return got

    def fit_of(self, group: Group) -> PackFit:
        """The group's pack as the last layout chose it (packed to fit a submit limit), else its
        own ``pack`` under MaxTime."""
        found = self._fits.get(id(group))
        return found[1] if found is not None and found[0] is group else self.pack_fit(
            group.resources)

    def _arrays_for(self, plan: Plan, live: Mapping[str, Where]) -> Arrays:
        size = self.client.max_array_size()

        def lay(fits: Sequence[PackFit]) -> list[ArrayLayout]:
            return layout_plan(plan, size, live, max_lanes=self.max_lanes,
                               packs=[f.size for f in fits])

        fits = [self.pack_fit(g.resources) for g in plan.groups]
        arrays = lay(fits)
        tasks = sum(a.task_count for a in arrays)
        allowance = self.allowance(plan, tasks)
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

    def allowance(self, plan: Plan, tasks: int) -> Allowance | None:
        """The user's remaining submit allowance when ``tasks`` would exceed it, else None
        (also when no limit is set or none can be read; the job count is asked only then).

        A launch of at most ``check_above`` tasks asks nothing unless the limits are cached
        already: should Slurm refuse it at the limit, the launch stops with what was submitted
        and the limits are read for the next one.
        """
        if tasks <= self.check_above and not self.site.accounting_cached():
            return None
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
        max_time_s, default_time_s = self.partition_times(res)
        time_s = res.time_s if res.time_s is not None else default_time_s
        return fit_pack(asked, time_s, res.pack_time_s if asked == res.pack else None,
                        max_time_s)

    def partition_times(self, res: Resources) -> tuple[int | None, int | None]:
        """MaxTime and DefaultTime of the partition(s) the group asks for (the default one if
        none), the strictest when several; None when unlimited or unknown."""
        parts = self.site.partitions()
        asked = dict(res.requirements).get("partition")
        names = str(asked).split(",") if asked else [n for n, p in parts.items() if p.default]
        found = [parts[n] for n in names if n in parts]
        max_times = [p.max_time_s for p in found if p.max_time_s is not None]
        defaults = [p.default_time_s for p in found if p.default_time_s is not None]
        return (min(max_times) if max_times else None, min(defaults) if defaults else None)

    def check_job_count(self, tasks: int) -> None:
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


def _text(value: object) -> str | None:
    """A requirement's value as text (None stays None)."""
    return None if value is None else str(value)
