"""The relay: a 1-CPU job of ours that plans the next wave when the current one has ended.

A sweep's next rung (and the stages that wait for its winners) can only be planned once the
current rung has ended. Instead of a driver process, ``launch`` submits a *relay*: a
one-task array job, waiting (``afterany``) for every job this root has live, that runs our own
CLI from the launch's code snapshot with the same artifact root::

    <python> <experiment file in the snapshot> launch <stages> \
        --artifact-path <root> --code-path <snapshot>

So a relay goes through the same launch lock, intent journal, reconcile, name look-up and
records as any ``launch`` (exactly-once holds for its submissions too): built and queued
artifacts are skipped, the decided rung's promoted trials are submitted, and, while the sweep
still waits, the next relay. Its record is a job of the stage it relays for (named
``<project>.<stage>.<launch>.relay``), so ``history`` lists it, ``cat``/``logs`` show its log
and ``cancel`` stops the chain with the rest. Nothing of ours runs between waves.

A relay is possible only where compute nodes may call ``sbatch`` and the experiment file
lies inside the code folder (the snapshot must hold it: :func:`relay_problem`), the
configuration leaves relays on and the last ``drylaunch --validate`` probe did not find that
nodes cannot submit (``verbs.launch._no_relays``, the one switch); otherwise
``launch`` says to launch again when the rung has ended.

Faults. A relay whose wave leaves more for later queues its successor before that wave
(waiting for itself), then makes it wait for the wave (:class:`SteersRelays`), so a relay
killed mid-submission still has one; its script runs a launch that died or failed again
(:data:`RELAY_ATTEMPTS`); one that finds the launch lock taken (the user's own launch) is put
back in the queue (:func:`requeue_if_busy`). :func:`at_submit_limit` tells a refusal that
waves can carry (the queue is full for now) from any other.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .. import _atomic, paths
from ..errors import ExperimentsError, SchedulerQueryError, SubmissionError
from ..model.identity import digest
from ..plan import Group, Plan
from ..plan.model import new_task
from ..plan.overrides import Overrides
from ..resources import Resources
from ..tracking.store import JobRecord
from .launch_context import LaunchContext

RELAY_REQUIREMENTS: dict[str, str | int] = {"cpus": 1, "time": "10:00"}
RELAY_ENV = "EXPERIMENTS_RELAY"  # set in a relay's job: its launch waits instead of refusing
WAVE_ENV = "EXPERIMENTS_RELAY_WAVE"  # in a relay's job: the number of the wave it submits
WAVE_FILE = "wave.json"  # beside a relay's script: that wave's number, the waves, what is left
RETRY_MINUTES = 5  # a relay that finds the allowance full tries again this much later
REQUEUED_EXIT = 75  # a relay that found the launch lock taken is queued again (EX_TEMPFAIL)
RELAY_ATTEMPTS = 3  # a relay whose launch failed or was killed runs it again, this often in all
RELAY_RETRY_S = 5  # … this long after the attempt before
# What a relay takes from the jobs it relays for: sites demand an account, a QOS, a partition.
INHERITED = ("account", "qos", "partition")
RELAY_SUFFIX = ".relay"
# Slurm's words for a submission refused because the user's or the account's submit limit
# has no room for it (sbatch prints the reason on a line of its own, then "Job violates
# accounting/QOS policy"). A full MaxJobCount queue is no refusal: sbatch sleeps and retries
# by itself, and the client treats what it prints as transient.
SUBMIT_LIMIT_RE = re.compile(r"(?:QOS|Assoc)(?:Max|Grp)SubmitJob\w*")


@runtime_checkable
class SubmitsRelays(Protocol):
    """A backend whose jobs outlive the launch and that can queue a relay after them."""

    name: str

    def relay_resources(self, like: Mapping[str, Any]) -> Resources: ...

    def wave_room(self, plan: Plan, records: Sequence[JobRecord]) -> int | None: ...

    def submit_relay(self, script: str, name: str, after: Sequence[str],
                     resources: Resources, begin_minutes: int = 0) -> str: ...


def at_submit_limit(exc: SubmissionError) -> bool:
    """Whether Slurm refused a submission for sure because the user's (or the account's)
    submit limit holds no more of their jobs: room comes back as jobs end."""
    return not exc.uncertain and bool(SUBMIT_LIMIT_RE.search(str(exc)))


def limit_reason(exc: SubmissionError) -> str:
    """Slurm's name for the limit that refused ``exc`` (its whole message when none)."""
    found = SUBMIT_LIMIT_RE.search(str(exc))
    return str(exc) if found is None else found.group(0)


@runtime_checkable
class SteersRelays(Protocol):
    """A backend that can put a running relay back in the queue (Slurm: ``scontrol
    requeue``, which starts it again about two minutes later, under the same job id) and
    change what a queued relay waits for (``scontrol update … dependency=``)."""

    def requeue_relay(self, job_id: str) -> None: ...

    def relay_after(self, job_id: str, after: Sequence[str]) -> None: ...


class RelayRequeued(ExperimentsError):
    """A relay found the project's launch lock taken (the user's own launch): it is queued
    again instead of waiting in its allocation."""

    exit_code = REQUEUED_EXIT


def requeue_if_busy(backend: object, busy: ExperimentsError) -> ExperimentsError:
    """The error to end a launch refused by the launch lock: in a relay, the relay is put
    back in the queue first (so the chain goes on once the user's launch has ended); a
    launch by hand gets ``busy`` as it is."""
    own = os.environ.get("SLURM_ARRAY_JOB_ID", "")
    if not (os.environ.get(RELAY_ENV) and own and isinstance(backend, SteersRelays)):
        return busy
    try:
        backend.requeue_relay(own)
    except SchedulerQueryError as exc:
        return ExperimentsError(f"{busy}; this relay (job {own}) could not be queued again "
                                f"({exc}): run the launch again to go on")
    return RelayRequeued(f"{busy}; this relay (job {own}) is queued again and plans the "
                         "next wave when it starts")


@dataclass(frozen=True)
class RelayPlan:
    """Where a relay would run and what it runs, or why it cannot."""

    argv: tuple[str, ...] = ()
    cwd: str = ""
    problem: str = ""


def relay_problem(source_file: str, code_path: str, snapshot_code: bool) -> str:
    """Why no relay could run this experiment ("" when one can)."""
    if not source_file:
        return "the experiment file is not known (run from a script?)"
    if snapshot_code and not Path(source_file).is_relative_to(code_path):
        return (f"the experiment file {source_file} is outside the code folder {code_path}, "
                "so the code snapshot does not hold it")
    return ""


def launch_options(with_deps: bool, max_running: int | None, overrides: Overrides
                   ) -> list[str]:
    """The options of a launch that its relays repeat: ``--with-deps``, an explicit
    ``--max-running`` and every ``--set`` (values as JSON, read back exactly)."""
    out = ["--with-deps"] if with_deps else []
    out += [f"--max-running={max_running}"] if max_running is not None else []
    out += [f"--set={k}={json.dumps(v)}" for k, v in overrides.everywhere.items()]
    out += [f"--set={s}:{k}={json.dumps(v)}" for s, kv in overrides.per_stage.items()
            for k, v in kv.items()]
    return out


def relay_plan(ctx: LaunchContext, stages: Sequence[str] | None,
               options: Sequence[str] = ()) -> RelayPlan:
    """The relay's command line: the experiment file in the launch's snapshot (or the live
    one when snapshots are off), with this launch's artifact root, code and ``options``."""
    source = ctx.experiment.source_file
    code = Path(ctx.code_path)
    problem = relay_problem(source, str(code), ctx.snapshot is not None)
    if problem:
        return RelayPlan(problem=problem)
    if ctx.snapshot is not None:
        code = Path(ctx.snapshot.path)
        source = str(code / Path(source).relative_to(ctx.code_path))
    argv = (ctx.python, source, "launch", *(stages or ()), "--artifact-path",
            ctx.artifact_path, "--code-path", str(code), *options)
    return RelayPlan(tuple(argv), str(code))


def this_wave() -> int:
    """The number of the wave this launch submits: 1 by hand, the next one in a relay."""
    try:
        return max(1, int(os.environ.get(WAVE_ENV, "1"))) if os.environ.get(RELAY_ENV) else 1
    except ValueError:
        return 1


def relay_script(plan: RelayPlan, name: str, log_dir: str, done: str, wave: int = 0) -> str:
    """The relay's batch script: one task, its log where every task's log goes; a launch that
    succeeded leaves the done marker ``done`` (so ``history`` shows the relay built)."""
    log = shlex.quote(f"{log_dir}/%A_%a.log")
    folder = shlex.quote(str(Path(done).parent))
    return "\n".join([
        "#!/bin/bash",
        f"#SBATCH --job-name={name}",
        "#SBATCH --array=0",
        f"#SBATCH --output={log}",
        f"#SBATCH --error={log}",
        "#SBATCH --requeue",  # may be queued again (lock taken, node lost): same id
        "#SBATCH --open-mode=append",  # a relay queued again keeps its earlier log
        "set -u",
        f"export {RELAY_ENV}=1 {WAVE_ENV}={int(wave)}",
        'echo "experiments: relay ${SLURM_ARRAY_JOB_ID:-?}_0 on $(hostname) at '
        '$(date -u +%Y-%m-%dT%H:%M:%SZ)" >&2',
        f"cd {shlex.quote(plan.cwd)}",
        f"for attempt in $(seq {RELAY_ATTEMPTS}); do",  # killed or failed: run it again;
        "  " + " ".join(shlex.quote(a) for a in plan.argv),  # its launch reconciles the last
        "  rc=$?",
        f"  case $rc in 0|2|{REQUEUED_EXIT}) break;; esac",  # done, unusable, queued again
        '  echo "experiments: the relay\'s launch ended with $rc (attempt $attempt of '
        f'{RELAY_ATTEMPTS})" >&2',
        f"  [ $attempt -lt {RELAY_ATTEMPTS} ] && sleep {RELAY_RETRY_S}",
        "done",
        f"[ $rc -eq 0 ] && mkdir -p {folder} && : > {shlex.quote(done)}",
        "exit $rc",
        "",
    ])


def submit_relay(backend: SubmitsRelays, ctx: LaunchContext, stage: str,
                 stages: Sequence[str] | None, after: Sequence[str],
                 like: Mapping[str, Any], options: Sequence[str] = (),
                 begin_minutes: int = 0, wave: Mapping[str, int] | None = None
                 ) -> JobRecord | str:
    """Queue the relay after the jobs ``after`` and record it as a job of ``stage``; it asks
    for the account, QOS and partition of ``like`` (a relayed job's requirements). Returns
    its record, or why no relay can be queued (the caller says so). ``begin_minutes``: start
    no sooner than that (a relay that found the allowance full waits in the queue, never in
    an allocation). ``wave``: the wave it submits (its number, the waves in all, the
    artifacts left), kept beside its script for ``status``."""
    plan = relay_plan(ctx, stages, options)
    if plan.problem:
        return plan.problem
    name = f"{ctx.project[:40]}.{stage[:40]}.{ctx.launch_id}{RELAY_SUFFIX}"
    relpath = f".relays/{name}"
    task = new_task("relay-" + digest(name)[:12], relpath, stage, "relay", (), (), (), None)
    resources = backend.relay_resources({k: like[k] for k in INHERITED if k in like})
    group = Group(stage, 0, resources, (task,))
    job = ctx.prepare(group, [task], name, backend.name, depends_on=list(after))
    script = str(Path(job.record.spec_dir) / paths.SCRIPT)
    text = relay_script(plan, name, job.record.log_dir,
                        paths.done_marker(ctx.artifact_path, relpath), (wave or {}).get("wave", 0))
    _atomic.write_bytes(script, text.encode("utf-8"), durable=False)
    if wave:
        _atomic.write_json(str(Path(job.record.spec_dir) / WAVE_FILE), dict(wave),
                           durable=False)
    try:
        job_id = backend.submit_relay(script, name, after, resources, begin_minutes)
    except SubmissionError as exc:
        if not exc.uncertain:  # refused for sure: the intent must not linger
            ctx.discard(job)
        raise
    return ctx.confirm(job, job_id)


def is_relay(record: JobRecord) -> bool:
    """Whether ``record`` is a relay job (not a job building artifacts)."""
    return record.name.endswith(RELAY_SUFFIX)


def wave_lines(records: Sequence[JobRecord], live: Callable[[JobRecord], bool]) -> list[str]:
    """Per live relay that submits a wave: ``wave 3 of 20: 170 artifact(s) not yet
    submitted; relay job 812 submits it when the jobs before it end``."""
    out = []
    for rec in records:
        if not is_relay(rec) or not live(rec):
            continue
        try:
            with open(Path(rec.spec_dir) / WAVE_FILE, encoding="utf-8") as fh:
                wave = json.load(fh)
            of = f" of {int(wave['of'])}" if int(wave["of"]) >= int(wave["wave"]) else ""
            text = (f"wave {int(wave['wave'])}{of}: {int(wave['left'])} artifact(s) not yet "
                    "submitted")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        out.append(f"{text}; relay job {rec.job_id} submits it when the jobs before it end")
    return out
