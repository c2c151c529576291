"""Code snapshots for a launch, and ``gc`` of the snapshot store.

``launch`` freezes the executor's ``code_path`` once (see
:mod:`experiments.launching.snapshots`) and every
job of the launch runs in that tree. Never copied, even when inside ``code_path``: the artifact
root, the experiments home (snapshot store, specs, tracking files) and the log directory.
Snapshots are on unless the executor says ``snapshot_code=False`` or the config
``"code_snapshots": false``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .. import paths
from .._faults import crash_point
from ..errors import SnapshotError
from ..launching import shipped, snapshot_pins, snapshots
from ..session import Session
from ..states import TaskKey, TaskStatus
from ..tracking.store import JobRecord, RecordState, Store


def enabled(session: Session) -> bool:
    """Whether launches of this session freeze the code (executor argument and config key)."""
    return session.experiment.snapshot_code and session.config.snapshots.enabled


def store_dir(session: Session) -> str:
    return str(paths.snapshots_dir(session.store.home))


def never_copy(session: Session) -> list[str]:
    """Paths a snapshot must never contain, even when they lie inside ``code_path``."""
    return [session.experiment.artifact_path, str(session.store.home),
            store_dir(session), str(session.config.log_directory)]


def _excludes(session: Session) -> tuple[str, ...]:
    configured = session.config.snapshots.excludes
    return snapshots.DEFAULT_EXCLUDES if configured is None else configured


def take(session: Session) -> tuple[snapshots.Snapshot | None, list[str]]:
    """The launch's snapshot of ``code_path`` (None when snapshots are off), and warnings.

    When ``code_path`` is itself the artifact root, the experiments home or the log directory
    (or lies inside one), nothing sensible can be frozen: the tasks run the live code and a
    warning says so. Raises ``SnapshotError`` (past the size limit, unreadable files, git
    failing) before anything is submitted. The snapshot is pinned for the launch (see
    :mod:`experiments.launching.snapshot_pins`): ``gc`` leaves it alone from the moment it is
    taken; the caller holds the project's launch lock and unpins when the launch ends.
    """
    if not enabled(session):
        return None, []
    code = os.path.realpath(session.experiment.code_path)
    for never in never_copy(session):
        real = os.path.realpath(never)
        if code == real or code.startswith(real.rstrip(os.sep) + os.sep):
            return None, [f"no code snapshot: code_path {session.experiment.code_path} is (or "
                          f"is inside) {never}, which is never copied; the tasks run the live "
                          "code. Give the experiment its own code folder to freeze it"]
    settings = session.config.snapshots
    max_bytes = settings.max_bytes or snapshots.DEFAULT_MAX_BYTES
    home, project = session.store.home, session.experiment.project
    try:
        with snapshot_pins.taking(home, project, session.config.umask):
            snap = snapshots.take(session.experiment.code_path, store_dir(session),
                                  never_copy=never_copy(session), excludes=_excludes(session),
                                  max_bytes=max_bytes)
            snapshot_pins.pin(home, project, snap.id)  # in use from now: gc sees the pin
        crash_point("snapshot-taken")
    except SnapshotError as exc:
        raise SnapshotError(
            f"{exc}. Snapshot settings in {session.config.path}: \"snapshot_max_mb\" (the "
            "limit), \"snapshot_excludes\", or \"code_snapshots\": false (or "
            "snapshot_code=False on the executor) to run the live code. Nothing was submitted"
        ) from None
    return shipped.snapshot(snap, session.experiment.code_path), []  # --on: the laptop's git


def current_id(session: Session) -> str:
    """The snapshot id the code has now (hashing only, nothing is copied)."""
    return snapshots.content_id(session.experiment.code_path, store_dir(session),
                                never_copy=never_copy(session), excludes=_excludes(session))


def _projects(session: Session) -> list[str]:
    root = paths.project_dir(session.store.home, "x").parent
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def in_use(session: Session) -> tuple[set[str], list[str]]:
    """Snapshot ids that a job of any project in this home may still run in, and warnings.

    A job counts as using its snapshot while any of its tasks is queued or running, while its
    submission is unconfirmed, and whenever its scheduler cannot be asked (we cannot tell).
    """
    batches: dict[str, list[JobRecord]] = {}
    for project in _projects(session):
        for r in Store(session.store.home, project).all_records():
            if r.snapshot:  # local job ids (L1, L2…) repeat across projects: ask per project
                batches.setdefault(project if r.backend == "local" else "", []).append(r)
    used: set[str] = set()
    warnings: list[str] = []
    for records in batches.values():  # one scheduler query for every Slurm job
        live = session.live(records)
        warnings.extend(w for w in live.warnings() if w not in warnings)
        for rec in records:
            if (rec.state is RecordState.SUBMITTING or rec.backend in live.unreachable
                    or _any_live(rec, live.statuses)):
                used.add(rec.snapshot or "")
    return used, warnings


def _any_live(rec: JobRecord, statuses: Mapping[TaskKey, TaskStatus]) -> bool:
    for i in range(len(rec.tasks)):
        st = statuses.get(TaskKey(rec.job_id or "", i))
        if st is not None and st.state.live:
            return True
    return False


def gc(session: Session, *, older_than_days: float, dry_run: bool = False
       ) -> tuple[snapshots.GcResult, list[str]]:
    """Remove snapshots unused for ``older_than_days``, never one a live job or a running
    launch uses: decided and renamed away while no launch is taking a snapshot, deleted after."""
    home, umask = session.store.home, session.config.umask
    trash: list[str] = []
    with snapshot_pins.collecting(home, umask) as got:
        if not got:
            return snapshots.GcResult((), (), dry_run), [
                f"code snapshots were not collected: launches kept taking snapshots for "
                f"{snapshot_pins.COLLECT_WAIT_S:.0f} s (lock {snapshot_pins.lock_path(home)}); "
                "run gc again later"]
        used, warnings = in_use(session)
        used |= snapshot_pins.pinned(home, _projects(session), umask)
        result = snapshots.gc(store_dir(session), in_use=used,
                              older_than_s=older_than_days * 86400, dry_run=dry_run, trash=trash)
    snapshots.empty_trash(trash)
    return result, warnings


__all__: Sequence[str] = ("enabled", "gc", "in_use", "never_copy", "take", "current_id")
