"""Talking to Slurm: sbatch, squeue, sacct, scancel and scontrol, through ``_proc.run`` only.

Submission. ``sbatch --parsable`` is retried only on transient errors (socket timeouts, an
unreachable controller, our own timeout …) with exponential backoff and jitter. Such a failure
is ambiguous — the job may exist anyway — so before every retry the job is looked up by its
unique name and, if found, that id is returned instead of submitting twice; a look-up that
finds nothing is trusted only when it still finds nothing one MessageTimeout later (a frozen
controller processes a request its client gave up on once it runs again). When that lookup
itself fails, nothing is resubmitted; if the attempts run out without an answer the error is
:class:`SubmissionUncertain`. Exit 0 with noise on stderr ("temporarily unable to accept job")
is a success. Any other failure is permanent: ``SubmissionError`` with Slurm's words, no retry.

Queries. One ``squeue`` call (``--me -t all``) and at most one ``sacct`` call for any number
of jobs. squeue is authoritative for what the controller still holds; sacct fills in what it
has forgotten, so the backend asks it only about jobs with a task whose end is not recorded
and that squeue does not show live (:func:`.parse.merge` lays one answer over the other). A
missing or disabled sacct is not an error: the answer is what squeue knows, and keys missing
from the answer mean "unknown" to the caller. A task of an unsplit array cancelled by itself
leaves no trace in either command.

Parsing what the commands print is :mod:`.parse`'s job; this module runs them.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ... import _proc
from ...errors import SchedulerQueryError, SubmissionError
from ...launching.waits import OnWait, SubmitWait, WaitPhase
from ...states import TaskStatus, TaskUsage
from . import clusters
from .parse import (
    QUERY_ID_RE,
    USAGE_FORMAT,
    merge,
    parse_job_id,
    parse_rows,
    parse_submitted_cluster,
    parse_usage,
    slurm_message,
)
from .script import check_job_name

TRANSIENT_RE = re.compile(
    r"Socket timed out|Unable to contact slurm controller|Zero Bytes were transmitted"
    r"|Unexpected message received|Transport endpoint|temporarily unable", re.I)
SACCT_DISABLED = "accounting storage is disabled"
# "|" is a suffix, not a width; the name last (see .clusters.named_rows)
SQUEUE_FORMAT = "JobArrayID:|,State:|,exit_code:|,Reason:|,Name:|"


class SubmissionUncertain(SubmissionError):
    """sbatch failed ambiguously and Slurm could not be asked whether the job exists.

    The job may have been submitted: look for it by name (``find_by_name``) before resubmitting.
    """

    uncertain = True


def _sorted_ids(ids: Iterable[str]) -> list[str]:
    """Distinct job ids, shortest (oldest) first."""
    return sorted(set(ids), key=lambda i: (len(i), i))


def _checked_ids(ids: Iterable[str]) -> list[str]:
    """Distinct job ids, sorted; SchedulerQueryError for anything that is not one."""
    out = _sorted_ids(ids)
    bad = [i for i in out if not isinstance(i, str) or not QUERY_ID_RE.fullmatch(i)]
    if bad:
        raise SchedulerQueryError(f"not Slurm job ids: {', '.join(map(repr, bad[:5]))}")
    return out


@dataclass(frozen=True)
class _Transient:
    message: str


@dataclass
class _Watch:
    """Reports the waits of one submission (``submit``'s ``on_wait``); silent without one."""

    job_name: str
    attempts: int
    on_wait: OnWait | None
    started: float = field(default_factory=time.monotonic)
    attempt: int = 1

    def report(self, phase: WaitPhase, next_in_s: float, said: str = "") -> None:
        if self.on_wait is not None:
            lines = [ln.strip() for ln in said.splitlines() if ln.strip()]
            self.on_wait(SubmitWait(phase, self.job_name, time.monotonic() - self.started,
                                    self.attempt, self.attempts, max(0.0, next_in_s),
                                    lines[-1] if lines else ""))


class SlurmClient:
    """Runs Slurm's commands by name (a ``PATH`` lookup) with ``TZ=UTC`` and standard times."""

    def __init__(self, env: Mapping[str, str] | None = None, *, attempts: int = 4,
                 backoff_s: float = 1.0, max_backoff_s: float = 8.0, timeout_s: float = 60.0,
                 name_lookback_days: int = 7, settle_s: float | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 notice_after_s: float = 5.0, notice_every_s: float = 10.0) -> None:
        self.env = {**(env or {}), "TZ": "UTC", "SLURM_TIME_FORMAT": "standard"}
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.name_lookback_days = name_lookback_days
        self._sleep = sleep
        self._max_array_size: int | None = None
        self._config_text: str | None = None
        self._message_timeout_s: float | None = None
        self._cluster: str | None = None  # this machine's ClusterName ("" when none says)
        self.cluster_of: dict[str, str] = {}  # job id -> the cluster sbatch said it sent it to
        self.settle_s = settle_s  # None: the controller's MessageTimeout + 2 s
        self.notice_after_s = notice_after_s  # a slow sbatch is reported after this long,
        self.notice_every_s = notice_every_s  # and again this often

    def _run(self, argv: Sequence[str]) -> _proc.ProcResult:
        return _proc.run(argv, timeout_s=self.timeout_s, env=self.env)

    # -- submission -----------------------------------------------------------------------
    def submit(self, script_path: str, *, job_name: str, extra_args: Sequence[str] = (),
               on_wait: OnWait | None = None) -> str:
        """Submit a batch script under ``job_name`` (unique per submission); return the job id.

        ``on_wait`` hears about every wait: sbatch slow to answer (after ``notice_after_s``,
        then every ``notice_every_s``), a retry's backoff, a look-up repeated after settling.
        """
        check_job_name(job_name)
        argv = ["sbatch", "--parsable", f"--job-name={job_name}", *extra_args, script_path]
        watch = _Watch(job_name, self.attempts, on_wait)
        problem = ""
        for attempt in range(self.attempts):
            watch.attempt = attempt + 1
            if attempt:
                delay = self._backoff(attempt)
                watch.report(WaitPhase.RETRY, delay, problem)
                self._sleep(delay)
                found, lookup_problem = self._lookup(job_name, watch)
                if found:
                    return found[0]
                if lookup_problem:  # we can't tell whether the job exists: don't risk a twin
                    problem = f"{problem}; looking it up failed: {lookup_problem}"
                    continue
            outcome = self._sbatch_once(argv, job_name, watch)
            if not isinstance(outcome, _Transient):
                return outcome
            problem = outcome.message
        return self._last_look(job_name, problem, watch)

    def _sbatch_once(self, argv: Sequence[str], job_name: str,
                     watch: _Watch | None = None) -> str | _Transient:
        """The job id, or a transient failure; raises SubmissionError on a permanent one."""
        try:
            if watch is None or watch.on_wait is None:
                result = self._run(argv)
            else:
                result = _proc.run_watched(
                    argv, timeout_s=self.timeout_s, env=self.env, first_s=self.notice_after_s,
                    every_s=self.notice_every_s,
                    tick=lambda elapsed, err: watch.report(
                        WaitPhase.SUBMITTING, self.timeout_s - elapsed, err))
        except _proc.ProcTimeout as exc:
            return _Transient(str(exc))
        except FileNotFoundError:
            raise SubmissionError(f"cannot submit job {job_name}: sbatch not found on PATH; "
                                  "is Slurm installed on this machine?") from None
        job_id = parse_job_id(result.stdout) if result.ok else None
        if job_id:
            sent_to = parse_submitted_cluster(result.stdout)
            if sent_to:
                self.cluster_of[job_id] = sent_to
            return job_id
        message = slurm_message(result)
        if result.ok or TRANSIENT_RE.search(result.stderr + result.stdout):
            return _Transient(message)
        raise SubmissionError(f"Slurm refused job {job_name}: {message}")

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return float(ceiling * random.uniform(0.5, 1.0))

    def _lookup(self, job_name: str, watch: _Watch | None = None) -> tuple[list[str], str]:
        """(ids of jobs named ``job_name``, "") or ([], why the lookup failed).

        Used only after an ambiguous failure, so a look-up that finds nothing is repeated once
        the controller's MessageTimeout (plus a margin) has passed: a controller that was frozen
        may hold the submission and create the job after it answers the first look-up.
        """
        found, problem = self._lookup_once(job_name)
        if found or problem:
            return found, problem
        if watch is not None:
            watch.report(WaitPhase.LOOKUP, self.settle())
        self._sleep(self.settle())
        return self._lookup_once(job_name)

    def settle(self) -> float:
        """How long after an ambiguous failure a job may still appear (see ``_lookup``)."""
        return self.settle_s if self.settle_s is not None else self.message_timeout_s() + 2.0

    def _lookup_once(self, job_name: str) -> tuple[list[str], str]:
        try:
            return self.find_by_name(job_name), ""
        except SchedulerQueryError as exc:
            return [], str(exc)

    def _last_look(self, job_name: str, problem: str, watch: _Watch | None = None) -> str:
        delay = self._backoff(self.attempts)
        if watch is not None:
            watch.attempt = self.attempts + 1  # past the last: only a look-up is left
            watch.report(WaitPhase.RETRY, delay, problem)
        self._sleep(delay)
        found, lookup_problem = self._lookup(job_name, watch)
        if found:
            return found[0]
        if lookup_problem:
            raise SubmissionUncertain(
                f"submitting job {job_name} failed ({problem}) and Slurm could not be asked "
                f"whether it exists ({lookup_problem}); check `squeue --me --name={job_name}` "
                "before launching again")
        raise SubmissionError(f"submitting job {job_name} failed after {self.attempts} "
                              f"attempts: {problem}")

    def test_only(self, script_path: str) -> str | None:
        """Ask ``sbatch --test-only`` about a script: None when accepted, else Slurm's reason."""
        try:
            result = self._run(["sbatch", "--test-only", script_path])
        except _proc.ProcTimeout as exc:
            return str(exc)
        except FileNotFoundError:
            return "sbatch not found on PATH; is Slurm installed on this machine?"
        return None if result.ok else slurm_message(result)

    # -- lookups --------------------------------------------------------------------------
    def find_by_name(self, job_name: str) -> list[str]:
        """Ids of this user's jobs named ``job_name`` (arrays by their array job id).

        squeue first (live and recently finished jobs); if it knows none, sacct over the last
        ``name_lookback_days`` days, when accounting is available.
        """
        check_job_name(job_name)
        result = self._query_cmd(["squeue", "--me", "-h", "-t", "all",
                                  f"--name={job_name}", "-o", "%F"])
        ids = [ln.strip() for ln in result.stdout.splitlines() if ln.strip().isdigit()]
        if not ids:
            ids = [i.split("_", 1)[0] for i in self._sacct(
                ["-X", "-P", "-n", f"--name={job_name}", "-S",
                 f"now-{self.name_lookback_days}days", "--format=JobID"])]
        return _sorted_ids(i for i in ids if i[:1].isdigit())

    def live_jobs_by_name(self) -> dict[str, list[str]]:
        """This user's pending and running jobs, ``{name: [array job id, ...]}`` (one squeue)."""
        out: dict[str, set[str]] = {}
        for line in self._query_cmd(["squeue", "--me", "-h", "-o", "%F|%j"]).stdout.splitlines():
            job_id, sep, name = line.strip().partition("|")
            if sep and job_id.isdigit():
                out.setdefault(name, set()).add(job_id)
        return {name: _sorted_ids(ids) for name, ids in out.items()}

    def sbatch_in_flight(self, job_name: str) -> list[int]:
        """Pids of ``sbatch`` processes on this machine still submitting ``job_name``."""
        return _proc.processes_with_arg(f"--job-name={job_name}")

    def message_timeout_s(self) -> float:
        """The controller's ``MessageTimeout`` (10 s, Slurm's default, if it cannot be read)."""
        if self._message_timeout_s is None:
            try:
                out = self._query_cmd(["scontrol", "show", "config"]).stdout
            except SchedulerQueryError:
                return 10.0
            match = re.search(r"^MessageTimeout\s*=\s*(\d+)", out, re.M)
            self._message_timeout_s = float(match.group(1)) if match else 10.0
        return self._message_timeout_s

    def max_array_size(self) -> int:
        """The cluster's ``MaxArraySize`` (array indices must stay below it); cached."""
        if self._max_array_size is None:
            found = self._config_int("MaxArraySize")
            if found is None:
                raise SchedulerQueryError("`scontrol show config` printed no MaxArraySize")
            self._max_array_size = found
        return self._max_array_size

    def max_job_count(self) -> int | None:
        """The cluster's ``MaxJobCount`` (every array *task* counts as one job; beyond it sbatch
        is told "temporarily unable to accept job" and retries); None if not printed."""
        return self._config_int("MaxJobCount")

    def cluster_name(self) -> str | None:
        """The cluster this machine's commands reach (its ``ClusterName``, see
        :mod:`.clusters`): from the configuration already read, else ``slurm.conf``, else one
        ``scontrol show config``; cached; None when nothing names it."""
        if self._cluster is None:
            found = clusters.config_name(self._config_text) if self._config_text else None
            found = found or clusters.conf_file_name(self.env)
            if found is None:
                try:
                    self._config_text = self._query_cmd(["scontrol", "show", "config"]).stdout
                    found = clusters.config_name(self._config_text)
                except SchedulerQueryError:
                    found = None
            self._cluster = found or ""
        return self._cluster or None

    def min_job_age_s(self) -> int | None:
        """The controller's ``MinJobAge``: how long it keeps an ended job (and ``scontrol
        requeue`` can bring it back); None when it cannot be read. Free after a launch's
        other reads of the configuration (one ``scontrol show config`` per client)."""
        try:
            return self._config_int("MinJobAge")
        except SchedulerQueryError:
            return None

    def _config_int(self, key: str) -> int | None:
        """An integer of ``scontrol show config`` (read once per client)."""
        if self._config_text is None:
            self._config_text = self._query_cmd(["scontrol", "show", "config"]).stdout
        match = re.search(rf"^{key}\s*=\s*(\d+)", self._config_text, re.M)
        return int(match.group(1)) if match else None

    def query(self, job_ids: Sequence[str]) -> dict[str, TaskStatus]:
        """Task states keyed ``<array job id>_<index>`` (or the plain id for a single job).

        One squeue call and at most one sacct call in total.
        """
        ids = _checked_ids(job_ids)
        if not ids:
            return {}
        return merge(self.queue_states(ids), self.accounted_states(ids))

    def queue_states(self, job_ids: Sequence[str], names: Mapping[str, str] | None = None
                     ) -> dict[str, TaskStatus]:
        """What the controller still holds about these jobs (one squeue; {} for no ids)."""
        return self.named_queue_states(job_ids, names or {})[0]

    def named_queue_states(self, job_ids: Sequence[str], names: Mapping[str, str]
                           ) -> tuple[dict[str, TaskStatus], dict[str, str]]:
        """What the controller still holds about these jobs (one squeue), without the jobs
        whose name is not the one ``names`` expects: those come back as ``{id: their name}``.

        Without ``-r``: an array's tasks not yet started come back as one row
        (``12_[5-999]``), expanded here, so 100,000 queued tasks are a hundred lines."""
        ids = _checked_ids(job_ids)
        if not ids:
            return {}, {}
        argv = ["squeue", "--me", "-h", "-t", "all", "-j", ",".join(ids), "-O", SQUEUE_FORMAT]
        result = self._query_cmd(argv, allow_invalid_id=True)
        if not result.ok:
            return {}, {}
        rows, foreign = clusters.named_rows(result.stdout, names)
        return parse_rows(rows), foreign

    def ask(self, argv: Sequence[str], *, allow_invalid_id: bool = False) -> _proc.ProcResult:
        """Run a read-only Slurm command (``scontrol show …``, ``sacctmgr show …``) for the
        other modules of this package; SchedulerQueryError unless it worked."""
        return self._query_cmd(argv, allow_invalid_id=allow_invalid_id)

    def accounted_states(self, job_ids: Sequence[str], names: Mapping[str, str] | None = None
                         ) -> dict[str, TaskStatus]:
        """What accounting knows about these jobs (one sacct; {} for no ids, or when sacct is
        missing, disabled or failing)."""
        return self.named_accounted_states(job_ids, names or {})[0]

    def named_accounted_states(self, job_ids: Sequence[str], names: Mapping[str, str]
                               ) -> tuple[dict[str, TaskStatus], dict[str, str]]:
        """``accounted_states`` without the jobs whose name is not the one ``names`` expects
        (returned as ``{id: their name}``)."""
        ids = _checked_ids(job_ids)
        rows = self._sacct(["-X", "-P", "-n", "-j", ",".join(ids),
                            "--format=JobID,State,ExitCode,Reason,JobName"]) if ids else []
        kept, foreign = clusters.named_rows("\n".join(rows), names)
        return parse_rows(kept), foreign

    def _query_cmd(self, argv: Sequence[str], *,
                   allow_invalid_id: bool = False) -> _proc.ProcResult:
        """Run a query command; SchedulerQueryError unless it worked.

        With ``allow_invalid_id``, squeue's "Invalid job id specified" (every id is unknown
        to the controller) is an empty answer, not an error.
        """
        try:
            result = self._run(argv)
        except (_proc.ProcTimeout, FileNotFoundError) as exc:
            raise SchedulerQueryError(f"cannot ask Slurm ({argv[0]}): {exc}") from None
        if result.ok or (allow_invalid_id and "Invalid job id" in result.stderr):
            return result
        raise SchedulerQueryError(f"cannot ask Slurm: {result.describe()}")

    def _sacct(self, args: Sequence[str]) -> list[str]:
        """sacct's output lines, or [] when sacct is missing, disabled or failing."""
        try:
            result = self._run(["sacct", *args])
        except (_proc.ProcTimeout, FileNotFoundError):
            return []
        if not result.ok or SACCT_DISABLED in (result.stderr + result.stdout):
            return []
        return [ln for ln in result.stdout.splitlines() if ln.strip()]

    def usage(self, job_ids: Sequence[str]) -> dict[str, TaskUsage]:
        """Accounting per task (``<array id>_<index>``): one sacct call for every job, with
        ``--duplicates`` so that every attempt of a requeued task counts (see
        :func:`parse_usage`). Empty when sacct is missing or disabled.
        """
        ids = _checked_ids(job_ids)
        rows = self._sacct(["-D", "-P", "-n", "-j", ",".join(ids),
                            f"--format={USAGE_FORMAT}"]) if ids else []
        return parse_usage(rows)

    # -- cancelling -----------------------------------------------------------------------
    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel jobs with one scancel call (an array id cancels every task; ``<id>_<i>`` one)."""
        ids = _checked_ids(job_ids)
        if ids:
            self._query_cmd(["scancel", *ids])

