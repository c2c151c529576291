"""May a job on a compute node submit? The probe relays need, and its verdict per cluster.

A relay calls ``sbatch`` from a compute node, with the environment its own ``sbatch`` gave
it. Some sites forbid that, or strip the job's environment (``SLURM_CONF`` gone, ``sbatch``
not on the nodes). ``drylaunch --validate`` asks: it queues a *probe*, a one-task job of ours
submitted exactly as a relay is (same ``sbatch`` call, options and environment), whose script
runs ``sbatch --test-only`` (nothing is submitted) and writes what it said into a private
folder of ours; drylaunch waits for that (at most :data:`PROBE_WAIT_S`), cancels a probe still
queued, and removes the folder.

The verdict is kept per cluster (its ``ClusterName``), with its date, in
``<home>/cache/relay-probe.json`` (always safe to delete: no verdict means relays are tried).
Where the last probe said no, or the configuration says ``"relays": false``, a launch that
would need relays stops as before relays existed, saying why (:func:`refusal`).
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .. import _atomic
from ..errors import SchedulerQueryError, SubmissionError
from ..states import TaskKey, TaskStatus
from ..tracking.store import JobRecord
from .relay import INHERITED, SubmitsRelays

PROBE_WAIT_S = 90.0  # how long drylaunch waits for the probe's verdict (queue and run)
QUERY_EVERY_S = 2.0  # how often it asks the scheduler whether the probe still lives
CACHE_NAME = "relay-probe.json"
RESULT = "result"  # the file the probe's script writes: sbatch's exit code, then its output
OFF = ('relays are turned off by the configuration ("relays": false; '
       "`experiments config show` says which file)")


@runtime_checkable
class ProbesNodes(SubmitsRelays, Protocol):
    """A backend that queues relays and can say how its jobs are and cancel them."""

    def query(self, records: Sequence[JobRecord]) -> Mapping[TaskKey, TaskStatus]: ...

    def cancel(self, records: Sequence[JobRecord]) -> None: ...


@dataclass(frozen=True)
class Verdict:
    """What a probe found on ``cluster``: ``ok`` True (relays work), False (a job cannot
    submit: ``said`` is sbatch's error there) or None (no verdict: ``said`` says why)."""

    cluster: str
    ok: bool | None
    said: str
    at: str  # when, UTC

    def line(self) -> str:
        """What drylaunch prints about it."""
        where = f" of cluster {self.cluster}" if self.cluster else ""
        if self.ok:
            return (f"Relays work here: a job on a compute node{where} may submit "
                    "(sbatch --test-only accepted it)")
        if self.ok is False:
            return (f"Compute nodes{where} cannot submit: {self.said}; a launch past the "
                    "submit limit will stop half-way, and sweeps need `--local` or a launch "
                    "per rung")
        return f"Relays: no verdict ({self.said})"


def cache_path(home: Path) -> Path:
    """Where the verdicts are kept (one small file of ours; safe to delete)."""
    return home / "cache" / CACHE_NAME


def cluster_of(backend: object) -> str:
    """The cluster a backend reaches (its ``cluster_name()``), "" when it cannot say."""
    name = getattr(backend, "cluster_name", None)
    return (name() if callable(name) else None) or ""


def _verdicts(home: Path) -> dict[str, Any]:
    """The cache's verdicts by cluster; {} when absent, not ours or unreadable."""
    data = _atomic.read_own_json(str(cache_path(home)))
    return data if isinstance(data, dict) else {}


def read_verdict(home: Path, cluster: str) -> Verdict | None:
    """The last verdict kept for ``cluster`` (None: never probed, or the cache is damaged)."""
    found = _verdicts(home).get(cluster)
    if not isinstance(found, dict) or found.get("ok") not in (True, False, None):
        return None
    return Verdict(cluster, found.get("ok"), str(found.get("said", "")), str(found.get("at", "")))


def remember(home: Path, verdict: Verdict) -> None:
    """Keep ``verdict`` for its cluster (best effort: the cache is never required)."""
    data = _verdicts(home)
    data[verdict.cluster] = {k: v for k, v in asdict(verdict).items() if k != "cluster"}
    _atomic.keep_json(str(cache_path(home)), data)


def refusal(relays_on: bool, backend: object, home: Path) -> str:
    """Why this site runs no relays ("" when they may run): the configuration turned them
    off, or the last probe of this cluster said its compute nodes cannot submit. Costs
    nothing (no file, no scheduler call) until a probe has run."""
    if not relays_on:
        return OFF
    if not cache_path(home).exists():
        return ""
    found = read_verdict(home, cluster_of(backend))
    if found is None or found.ok is not False:
        return ""
    where = f" of cluster {found.cluster}" if found.cluster else ""
    return f"compute nodes{where} cannot submit (probe of {found.at[:10]}: {found.said})"


def probe_script(folder: Path, test_args: Sequence[str]) -> str:
    """The probe's batch script: ``sbatch --test-only`` of a script that does nothing, with
    the relay's options; sbatch's exit code and output go to ``folder/result`` at once."""
    q = {k: shlex.quote(str(folder / k))
         for k in ("probe.log", "nothing.sh", RESULT, RESULT + ".tmp")}
    return "\n".join([
        "#!/bin/bash",
        "#SBATCH --array=0",
        f"#SBATCH --output={q['probe.log']}",
        f"#SBATCH --error={q['probe.log']}",
        "# experiments: may a job on a compute node submit, as a relay does? (--test-only:",
        "# nothing is submitted)",
        "out=$(sbatch --test-only " + " ".join(shlex.quote(a) for a in test_args)
        + f" {q['nothing.sh']} 2>&1)",
        "rc=$?",
        f"printf '%s\\n%s\\n' \"$rc\" \"$out\" > {q[RESULT + '.tmp']} && "
        f"mv {q[RESULT + '.tmp']} {q[RESULT]}",
        "",
    ])


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_result(text: str, cluster: str) -> Verdict:
    """The verdict in a probe's result file (exit code line, then sbatch's output)."""
    code, _, said = text.partition("\n")
    lines = [ln.strip() for ln in said.splitlines() if ln.strip()]
    if code.strip() == "0":
        return Verdict(cluster, True, lines[-1] if lines else "", _now())
    return Verdict(cluster, False, lines[-1] if lines else f"sbatch exited {code.strip()}",
                   _now())


def probe(backend: ProbesNodes, like: Mapping[str, Any], project: str, home: Path,
          wait_s: float = PROBE_WAIT_S) -> Verdict:
    """Queue a probe (with ``like``'s account, QOS and partition, as a relay would ask),
    wait for its verdict, remember it, and remove the probe's folder."""
    cluster = cluster_of(backend)
    parent = home / "probes"
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = Path(tempfile.mkdtemp(prefix="p", dir=parent))  # 0700
    try:
        resources = backend.relay_resources({k: like[k] for k in INHERITED if k in like})
        (folder / "nothing.sh").write_text("#!/bin/bash\ntrue\n", encoding="utf-8")
        script = folder / "probe.sh"
        script.write_text(probe_script(folder, resources.option_words()), encoding="utf-8")
        name = f"{project[:40]}.relay-probe.{folder.name[-8:]}"
        try:
            job_id = backend.submit_relay(str(script), name, (), resources)
        except SubmissionError as exc:
            return Verdict(cluster, None, f"the probe job could not be submitted: {exc}",
                           _now())
        record = JobRecord(name, backend.name, "probe", 0, [["probe", "probe"]], job_id=job_id)
        try:
            verdict = _await(backend, record, folder, cluster, wait_s)
        except BaseException:  # interrupted: leave no probe behind
            _cancel(backend, record)
            raise
        if verdict.ok is not None:
            remember(home, verdict)
        return verdict
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _await(backend: ProbesNodes, record: JobRecord, folder: Path, cluster: str,
           wait_s: float) -> Verdict:
    """The probe's verdict once its result file appears; no verdict when its job ended
    without one, or when it is still queued after ``wait_s`` (then it is cancelled)."""
    deadline, asked, state = time.monotonic() + wait_s, 0.0, "PENDING"
    ended_at: float | None = None
    while True:
        if (folder / RESULT).exists():
            return parse_result((folder / RESULT).read_text(encoding="utf-8",
                                                             errors="replace"), cluster)
        now = time.monotonic()
        if ended_at is not None and now - ended_at > QUERY_EVERY_S:  # the file may lag
            return Verdict(cluster, None, f"the probe job {record.job_id} ended ({state}) "
                           f"without a verdict: {_log_tail(folder)}", _now())
        if now > deadline:
            _cancel(backend, record)
            return Verdict(cluster, None, f"the probe job {record.job_id} waited ({state}) "
                           f"more than {wait_s:.0f} s and was cancelled; run `drylaunch "
                           "--validate` again when the queue is quieter", _now())
        if ended_at is None and now - asked >= QUERY_EVERY_S:
            asked, state, live = now, *_state(backend, record)
            ended_at = None if live else now
        time.sleep(0.1)


def _state(backend: ProbesNodes, record: JobRecord) -> tuple[str, bool]:
    """The probe's state and whether it is queued or running (unknown counts as live)."""
    try:
        found = list(backend.query([record]).values())
    except SchedulerQueryError:
        return "unknown", True
    if not found:
        return "not seen yet", True
    status = found[0]
    said = status.raw or status.state.name
    return (f"{said}, {status.reason}" if status.reason else said), status.state.live


def _cancel(backend: ProbesNodes, record: JobRecord) -> None:
    try:
        backend.cancel([record])
    except SchedulerQueryError:
        pass


def _log_tail(folder: Path) -> str:
    """The last line of the probe's log, or a hint when it left none."""
    try:
        lines = [ln for ln in (folder / "probe.log").read_text(
            encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    return lines[-1] if lines else ("no log either (do compute nodes see the experiments "
                                    f"home, {folder.parent.parent}?)")
