"""The backend seam: the ``Backend`` protocol, and the optional capabilities a backend may offer.

A backend turns a :class:`~experiments.plan.Plan` into running work and answers questions about
it. Everything above this line (verbs, status, the CLI) speaks only these protocols and the
shared words of :mod:`experiments.resources` and :mod:`experiments.states`, so no scheduler
vocabulary leaks upward: a held task arrives as ``TaskStatus(held=True, hint=...)``, never as
Slurm's reason text to be guessed at.

Every backend (:class:`Backend`):

    resolve(requirements, where) -> Resources      once per distinct requirement set, at planning
    describe(group, validate=...) -> Description   what drylaunch shows for one group
    launch(plan, ctx) -> [JobRecord]               submit (or run) every group, recording each job
    query(records) -> {TaskKey: TaskStatus}        one call for any number of jobs
    cancel(records)                                stop every live task of those jobs
    find_by_name(name) -> [job id]                 adopt a job whose submission was not confirmed

Optional capabilities, each a ``runtime_checkable`` protocol that the verbs test with
``isinstance`` (never ``getattr``): :class:`SubmissionTracking` (``reconcile``),
:class:`LaysOutArrays` (drylaunch's arrays), :class:`KeepsAccounts` (``efficiency``) and
:class:`WarnsAboutSite` (the login-node warning). Backends are created by name through the
registry in :mod:`experiments.backends`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..config.settings import Config
    from ..launching.launch_context import LaunchContext
    from ..plan import Group, Plan
    from ..plan.lanes import ArrayLayout
    from ..resources import Resources, Scalar
    from ..states import TaskKey, TaskStatus, TaskUsage
    from ..tracking.store import JobRecord


@dataclass(frozen=True)
class Description:
    """What drylaunch shows for one group: lines to print and problems found."""

    lines: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackendOptions:
    """What the registry hands a backend factory: the configuration and launch options."""

    config: Config
    workers: int | None = None


class Backend(Protocol):
    """What every backend offers; see the module docstring for the contract of each method."""

    name: str

    def resolve(self, requirements: Mapping[str, Scalar], where: str) -> Resources: ...
    def describe(self, group: Group, *, validate: bool) -> Description: ...
    def launch(self, plan: Plan, ctx: LaunchContext) -> list[JobRecord]: ...
    def query(self, records: Sequence[JobRecord]) -> dict[TaskKey, TaskStatus]: ...
    def cancel(self, records: Sequence[JobRecord]) -> None: ...
    def find_by_name(self, name: str) -> list[str]: ...


@runtime_checkable
class SubmissionTracking(Protocol):
    """What a backend whose submissions can outlive their call offers ``reconcile`` (optional).

    ``submissions_in_flight(name)``: pids of processes on this machine still submitting the job
    called ``name`` (e.g. an ``sbatch`` retrying by itself). ``lookup_settle_s()``: how long after
    an ambiguous failure a submission may still appear, so that a look-up by name finding
    nothing is proof only when repeated that much later. ``live_jobs_by_name()``: this user's
    live jobs, ``{job name: [job id, ...]}``, in one query, to find untracked twins.
    """

    def submissions_in_flight(self, name: str) -> list[int]: ...
    def lookup_settle_s(self) -> float: ...
    def live_jobs_by_name(self) -> dict[str, list[str]]: ...


@runtime_checkable
class LaysOutArrays(Protocol):
    """A backend that submits a plan as arrays waiting on each other (optional; drylaunch).

    ``layout(plan, records)``: the arrays ``launch`` would submit now (``records``: the
    project's jobs, for live dependencies). ``layout_notes(plan, records)``: the same arrays
    with what drylaunch says about them: notes (e.g. packed to fit a submit limit) and
    problems (a launch that cannot be submitted as it stands).
    """

    def layout(self, plan: Plan, records: Sequence[JobRecord]) -> list[ArrayLayout]: ...
    def layout_notes(self, plan: Plan, records: Sequence[JobRecord]
                     ) -> tuple[list[ArrayLayout], list[str], list[str]]: ...


@runtime_checkable
class KeepsAccounts(Protocol):
    """A backend whose scheduler keeps accounts (optional; ``efficiency``).

    ``usage(records)``: what each task of those jobs used, ``{TaskKey: TaskUsage}``, in one
    call for any number of jobs; tasks accounting does not know are left out.
    """

    def usage(self, records: Sequence[JobRecord]) -> dict[TaskKey, TaskUsage]: ...


@runtime_checkable
class WarnsAboutSite(Protocol):
    """A backend that runs tasks on this very machine (optional; ``launch``/``drylaunch``).

    ``site_warning()``: a warning when this machine looks like the wrong place to run them (a
    shared Slurm login node), else None.
    """

    def site_warning(self) -> str | None: ...
