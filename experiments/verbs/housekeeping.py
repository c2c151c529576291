"""``gc``: remove the files that no live job and no recorded history needs, and say what it freed.

What goes, for the session's project, once it is older than ``older_than_days``:

* a job's **task logs and spec folder**, once every task of the job has ended and that end is
  recorded in its job record (``history`` keeps the states, the scheduler's words, the exit
  codes; ``cat`` then says the log was removed by gc). The age counts from the job's last sign
  of life: when its ends were first observed (by ``status``, ``history``, ``wait`` or ``gc``
  itself) or its last log write, whichever is later. The record stays, marked ``collected_at``;
  a record that did not keep its artifact root gets it from the spec before the spec goes;
* **moved-aside done markers** (``.done.invalidated-<stamp>``, left by ``invalidate`` and
  ``--rebuild-stale``) of the project's artifacts, by their stamp, except the newest of an
  artifact that has not been rebuilt since (the only trace of the build its files came from);
* **output of detached local launchers** (``projects/<project>/detached/*.log``), by mtime,
  while no local job of the project is live;
* **code snapshots** no live job uses (:func:`.code_snapshots.gc`, every project of the home).

Never touched: anything of a live job — queued or running per the scheduler, being submitted,
whose scheduler cannot be asked (we cannot tell), or whose record does not hold every task's
end — nor files no record names. ``--dry-run`` judges exactly as the real run (the ends it
would record are kept in memory). A launch may run meanwhile: its jobs are recorded as being
submitted before their files matter, the markers it moves aside are new, its code snapshot is
pinned from the moment it is taken (:mod:`experiments.launching.snapshot_pins`), and detached
launchers' logs stay while any launch of the project runs.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from enum import Enum

from .. import paths
from ..launching.snapshot_pins import launch_running
from ..launching.snapshots import GcResult
from ..session import Session
from ..states import TaskKey
from ..tracking.ends import record_endings, root_of
from ..tracking.status import Live, ended_entry, live_artifacts
from ..tracking.store import JobRecord, RecordState, now_iso
from .code_snapshots import gc as gc_snapshots

DAY_S = 86400.0


class Kind(str, Enum):
    """What a removal is."""

    LOG = "log"
    SPEC = "spec"
    MARKER = "marker"
    DETACHED = "detached log"


@dataclass(frozen=True)
class Removal:
    """One file or folder ``gc`` removed (or would remove), with what it held."""

    kind: Kind
    path: str
    files: int
    bytes: int
    job: str = ""  # the job it belonged to, when it did


@dataclass
class GcReport:
    """What ``gc`` removed (``dry_run``: would remove), kept, and warned about."""

    older_than_days: float
    dry_run: bool
    removals: list[Removal] = field(default_factory=list)
    jobs_collected: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # job -> why its files stay
    snapshots: GcResult | None = None
    warnings: list[str] = field(default_factory=list)

    def total(self, kind: Kind | None = None) -> tuple[int, int]:
        """Files and bytes of the removals (of one kind), code snapshots left out."""
        chosen = [r for r in self.removals if kind is None or r.kind is kind]
        return sum(r.files for r in chosen), sum(r.bytes for r in chosen)


def collect(session: Session, *, older_than_days: float, dry_run: bool = False) -> GcReport:
    """Remove (or list) what no live job and no recorded history of the project needs."""
    report = GcReport(older_than_days, dry_run)
    cutoff = time.time() - older_than_days * DAY_S
    records = session.records()
    live = session.live(records)
    report.warnings.extend(live.warnings())
    root = session.experiment.artifact_path
    if dry_run:  # what the real run would record, kept in memory
        records = [_seen_ended(rec, live, root) for rec in records]
    else:  # history keeps each end before the files go
        records = record_endings(session.store, records, live, root)
    _jobs(session, records, live, cutoff, report)
    _markers(session, records, live, cutoff, report)
    _detached(session, records, live, cutoff, report)
    report.snapshots, warnings = gc_snapshots(session, older_than_days=older_than_days,
                                              dry_run=dry_run)
    report.warnings.extend(w for w in warnings if w not in report.warnings)
    return report


# ------------------------------------------------------------------------------ jobs


def _seen_ended(record: JobRecord, live: Live, default_root: str) -> JobRecord:
    """The record with the ends ``record_endings`` would write now (nothing is written)."""
    if not record.job_id:
        return record
    root = root_of(record) or default_root
    seen = {str(i): e for i in range(len(record.tasks))
            if (e := ended_entry(record, i, live, root)) is not None}
    return replace(record, ended={**seen, **record.ended}) if seen else record



def liveness(record: JobRecord, live: Live) -> str:
    """Why the job counts as live ('' when it has ended): queued or running per the
    scheduler, being submitted, or its scheduler could not be asked (we cannot tell)."""
    if record.state is RecordState.SUBMITTING:
        return "being submitted"
    if record.backend in live.unreachable:
        return f"the {record.backend} scheduler could not be asked"
    if any(st.state.live for i in range(len(record.tasks))
           if (st := live.get(TaskKey(record.job_id or "", i))) is not None):
        return "live"
    return ""


def why_kept(record: JobRecord, live: Live, cutoff: float) -> str:
    """Why a job's logs and spec must stay ('' when they may go)."""
    if why := liveness(record, live):
        return why
    if _unended(record):
        return "its end is not recorded yet"
    if _last_sign_of_life(record) > cutoff:
        return "ended recently"
    return ""


def _unended(record: JobRecord) -> bool:
    """A submitted job whose record does not hold every task's end yet."""
    return bool(record.job_id) and any(str(i) not in record.ended
                                       for i in range(len(record.tasks)))


def _last_sign_of_life(record: JobRecord) -> float:
    """When the job was last seen alive: its ends' first observation, its last log write."""
    times = [_parse_iso(e.get("observed_at")) for e in record.ended.values()]
    if not record.job_id:
        times.append(_parse_iso(record.submitted_at))
    for i in range(len(record.tasks)):
        try:
            times.append(record.log_path(i).stat().st_mtime)
        except OSError:
            pass
    return max(times, default=float("inf"))


def _parse_iso(text: object) -> float:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return float("inf")  # unreadable: never old enough


def _jobs(session: Session, records: Sequence[JobRecord], live: Live, cutoff: float,
          report: GcReport) -> None:
    """Logs and spec folders of ended jobs; their records are marked collected."""
    keep: dict[str, JobRecord] = {}
    go: list[JobRecord] = []
    for rec in records:
        if rec.collected_at:
            continue
        why = why_kept(rec, live, cutoff)
        if why:
            keep[rec.name] = rec
            report.kept[rec.job_id or rec.name] = why
        else:
            go.append(rec)
    in_use = {p for rec in keep.values() for p in _job_paths(rec)}  # shared by a kept job?
    changes: dict[str, dict[str, dict[str, object]]] = {}
    for rec in go:
        found = [r for p in _job_paths(rec) if p not in in_use
                 and (r := _measure(p, Kind.SPEC if p == rec.spec_dir else Kind.LOG,
                                    rec.job_id or rec.name)) is not None]
        change: dict[str, object] = {"collected_at": now_iso()}
        if rec.artifact_path is None and (root := root_of(rec)) is not None:
            change["artifact_path"] = root  # the spec header goes with the spec
        if not report.dry_run:
            found = [r for r in found if _remove(r, report)]
            changes.setdefault(rec.stage, {})[rec.name] = change
        report.removals.extend(found)
        report.jobs_collected.append(rec.job_id or rec.name)
    for stage, by_name in changes.items():
        session.store.update_many(stage, by_name)


def _job_paths(record: JobRecord) -> list[str]:
    out = [str(record.log_path(i)) for i in range(len(record.tasks))] if record.job_id else []
    return [*out, *([record.spec_dir] if record.spec_dir else [])]


# ------------------------------------------------------------------------------ markers


def _markers(session: Session, records: Sequence[JobRecord], live: Live, cutoff: float,
             report: GcReport) -> None:
    """Moved-aside done markers older than the cutoff, of artifacts no live task builds."""
    busy = set(live_artifacts(records, live))
    busy |= {a for r in records if liveness(r, live) or _unended(r) for a, _ in r.tasks}
    for root, artifact_id, relpath in _artifact_dirs(session, records):
        if artifact_id in busy:
            continue
        for path in _old_markers(paths.artifact_dir(root, relpath), cutoff):
            found = _measure(path, Kind.MARKER)
            if found is not None and (report.dry_run or _remove(found, report)):
                report.removals.append(found)


def _artifact_dirs(session: Session, records: Sequence[JobRecord]
                   ) -> Iterable[tuple[str, str, str]]:
    """(root, artifact id, relpath) of the project's artifacts: its stages and its jobs."""
    seen: set[tuple[str, str]] = set()
    root = os.path.normpath(session.experiment.artifact_path)
    for arts in session.experiment.stages.values():
        for art in arts:
            if (root, art.relpath) not in seen:
                seen.add((root, art.relpath))
                yield root, art.artifact_id, art.relpath
    for rec in records:
        rec_root = root_of(rec) or root
        for artifact_id, relpath in rec.tasks:
            if (rec_root, relpath) not in seen:
                seen.add((rec_root, relpath))
                yield rec_root, artifact_id, relpath


def _old_markers(folder: str, cutoff: float) -> list[str]:
    """The moved-aside markers in ``folder`` stamped before ``cutoff``; while the artifact is
    not built again, its newest one stays."""
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.name.startswith(paths.INVALIDATED))
    except OSError:
        return []
    stamps = {n: _stamp_time(n[len(paths.INVALIDATED):]) for n in names}
    if names and not os.path.exists(os.path.join(folder, paths.DONE)):
        newest = max(names, key=lambda n: (stamps[n], n))
        names.remove(newest)
    return [os.path.join(folder, n) for n in names if stamps[n] < cutoff]


def _stamp_time(stamp: str) -> float:
    """``20261129T143000Z`` (maybe with a ``-2`` suffix) as a time; unreadable: never old."""
    try:
        return datetime.strptime(stamp[:16], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=timezone.utc).timestamp()
    except ValueError:
        return float("inf")


# ------------------------------------------------------------------------------ detached logs


def _detached(session: Session, records: Sequence[JobRecord], live: Live, cutoff: float,
              report: GcReport) -> None:
    """Output of detached local launchers, while no local job of the project is live and no
    launch of it runs (a detached launcher writes its log before it records any job)."""
    if any(r.backend == "local" and liveness(r, live) for r in records):
        return
    if launch_running(session.store.home, session.experiment.project, session.config.umask):
        return
    folder = paths.detached_log(session.store.home, session.experiment.project, "x").parent
    try:
        entries = [e for e in os.scandir(folder) if e.is_file() and e.name.endswith(".log")]
    except OSError:
        return
    for entry in entries:
        if entry.stat().st_mtime < cutoff:
            found = _measure(entry.path, Kind.DETACHED)
            if found is not None and (report.dry_run or _remove(found, report)):
                report.removals.append(found)


# ------------------------------------------------------------------------------ files


def _measure(path: str, kind: Kind, job: str = "") -> Removal | None:
    """The file or folder at ``path`` as a removal (None when it is not there)."""
    try:
        if not os.path.isdir(path) or os.path.islink(path):
            return Removal(kind, path, 1, os.lstat(path).st_size, job)
    except OSError:
        return None
    files = size = 0
    for top, dirs, names in os.walk(path):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            try:
                size += os.lstat(os.path.join(top, name)).st_size
                files += 1
            except OSError:
                pass
    return Removal(kind, path, files, size, job)


def _remove(removal: Removal, report: GcReport) -> bool:
    """Remove it; a failure is a warning (the rest goes on), True when it is gone."""
    try:
        if os.path.isdir(removal.path) and not os.path.islink(removal.path):
            shutil.rmtree(removal.path)
        else:
            os.unlink(removal.path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        report.warnings.append(f"could not remove {removal.path}: {exc.strerror}")
        return False
    return True


def missing_log_note(record: JobRecord) -> str | None:
    """What ``cat`` says when a collected job's log is asked for (None: not collected)."""
    if not record.collected_at:
        return None
    return (f"log removed by gc on {record.collected_at[:10]} (the job had ended); its states "
            "stay in `history`")
