"""The store: what was submitted, per project and stage, in ``jobs.json``.

Writes are atomic (temp file, fsync, rename) and serialised by a lock file beside the JSON, so
concurrent launchers never lose a record. A damaged file is never reset: it is copied aside and
reported with how to recover.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from . import _atomic, paths
from .errors import StoreError

FORMAT_VERSION = 1


def now_iso() -> str:
    """The current time as ISO 8601 with its UTC offset."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class RecordState(str, enum.Enum):
    """What we know of a job without asking the scheduler (its string is what jobs.json holds)."""

    SUBMITTING = "submitting"  # intent written, the scheduler has not confirmed a job id yet
    SUBMITTED = "submitted"
    CANCELLED = "cancelled"    # cancelled by us
    FINISHED = "finished"      # the local runner saw every task end


@dataclass(frozen=True)
class JobRecord:
    """One submitted (or being submitted) array job and the artifacts its tasks build."""

    name: str
    backend: str
    stage: str
    tier: int
    tasks: list[list[str]]                 # [artifact_id, relpath] per array index
    requirements: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    spec_dir: str = ""
    log_dir: str = ""
    job_id: str | None = None
    state: RecordState = RecordState.SUBMITTING
    submitted_at: str = field(default_factory=now_iso)
    host: str | None = None
    pid: int | None = None
    pid_start: int | None = None
    task_states: dict[str, str] = field(default_factory=dict)  # index -> final local state
    snapshot: str | None = None  # id of the code snapshot its tasks run in (None: live code)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in data.items() if k in known}
        fields["state"] = RecordState(fields.get("state", RecordState.SUBMITTING))
        return cls(**fields)

    def log_path(self, index: int) -> Path:
        """The log file of array task ``index``."""
        return paths.task_log(Path(self.log_dir), self.job_id or "?", index)


class Store:
    """Job records of one project, one ``jobs.json`` per stage."""

    def __init__(self, home: Path, project: str) -> None:
        self.home = home
        self.project = project
        self.mode = 0o666  # the process umask (from the config) makes it private

    def _file(self, stage: str) -> Path:
        return paths.jobs_file(self.home, self.project, stage)

    def stages(self) -> list[str]:
        """Stages that have a jobs.json, in name order."""
        root = paths.project_dir(self.home, self.project)
        if not root.is_dir():
            return []
        return sorted(p.parent.name for p in root.glob("*/jobs.json"))

    def records(self, stage: str) -> list[JobRecord]:
        """The records of ``stage`` (empty when nothing was ever submitted)."""
        return [JobRecord.from_dict(r) for r in self._read(self._file(stage))]

    def all_records(self, stages: Sequence[str] | None = None) -> list[JobRecord]:
        return [r for s in (stages if stages is not None else self.stages())
                for r in self.records(s)]

    def add(self, record: JobRecord) -> None:
        """Append a record (under the stage's lock, atomically)."""
        with self._locked(record.stage) as (data, save):
            data.append(record.to_dict())
            save(data)

    def update(self, stage: str, name: str, **changes: Any) -> JobRecord:
        """Change fields of the record called ``name`` and return the new record."""
        return self.update_many(stage, {name: changes})[name]

    def update_many(self, stage: str, changes: dict[str, dict[str, Any]]) -> dict[str, JobRecord]:
        """Apply ``{record name: {field: value}}`` in one locked read-modify-write."""
        out: dict[str, JobRecord] = {}
        with self._locked(stage) as (data, save):
            for i, raw in enumerate(data):
                if raw.get("name") in changes:
                    rec = replace(JobRecord.from_dict(raw), **changes[raw["name"]])
                    data[i] = rec.to_dict()
                    out[rec.name] = rec
            missing = set(changes) - set(out)
            if missing:
                raise StoreError(f"{self._file(stage)} has no job named {sorted(missing)[0]}")
            save(data)
        return out

    def remove(self, stage: str, names: set[str]) -> None:
        """Drop records (used for intents that never reached the scheduler)."""
        with self._locked(stage) as (data, save):
            save([r for r in data if r.get("name") not in names])

    # -- file handling --------------------------------------------------------------------
    @contextmanager
    def _locked(self, stage: str) -> Iterator[tuple[list[dict[str, Any]],
                                                    Callable[[list[dict[str, Any]]], None]]]:
        path = self._file(stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock", timeout=60, mode=self.mode)
        try:
            with lock:
                data = self._read(path)
                yield data, lambda new: self._write(path, new)
        except Timeout:
            raise StoreError(f"could not lock {path} within 60 s; another launcher may be "
                             f"stuck: check it, or delete {path}.lock if none runs") from None

    def _write(self, path: Path, records: list[dict[str, Any]]) -> None:
        payload = {"version": FORMAT_VERSION, "project": self.project, "jobs": records}
        _atomic.write_json(str(path), payload, mode=self.mode, indent=None,
                           crash_label="jobs-json-write")

    def _read(self, path: Path) -> list[dict[str, Any]]:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise self._damaged(path, f"not UTF-8: {exc.reason}") from None
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
                raise ValueError("not a jobs file (no 'jobs' list)")
            return list(data["jobs"])
        except ValueError as exc:
            raise self._damaged(path, str(exc)) from None

    def _damaged(self, path: Path, why: str) -> StoreError:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{os.getpid()}")
        try:
            shutil.copy2(path, aside)
            kept = f"a copy is kept at {aside}"
        except OSError:
            kept = "it could not be copied aside"
        return StoreError(
            f"tracking file {path} is damaged ({why}); {kept}. Repair it, or delete it to "
            "start this stage's tracking afresh (built artifacts are still recognised by their "
            "done markers, but queued jobs will be forgotten)"
        )
