"""The store: what was submitted, per project and stage, as a snapshot plus an append-only journal.

Each stage folder holds::

    jobs.json                  snapshot: {"version": 1, "project", "journal": G,
                               "journal_id": I, "jobs": [...]}
    jobs.journal-G.jsonl       a header naming G and I, then the events since that snapshot,
                               one JSON object per line (see experiments/tracking/journal.py)
    jobs.json.lock             serialises writers of the stage

Why a journal: a launch records two events per submission (the intent, then the job id). Rewriting
the whole snapshot for each made every ``sbatch`` cost O(history); appending one line costs the
same whatever the history. The state of a stage is the snapshot with the journal's events replayed:
``{"op": "add", "record": {...}}``, ``{"op": "update", "changes": {name: {field: value}}}`` and
``{"op": "remove", "names": [...]}``.

Crash safety: an event is written (without its newline), then committed by its newline, then
fsynced, all under the stage lock. A SIGKILL at any moment leaves the old state (a last line without
a newline is a torn, uncommitted event: readers ignore it and the next writer cuts it off) or the
new one. Compaction, when the journal outgrows ``max(COMPACT_MIN_BYTES, snapshot size)``, writes a
new journal G+1 (its header only), then a snapshot naming it atomically (temp file, fsync,
rename), then deletes journal G; a crash in between leaves a stale journal that nothing reads.
That rule keeps the amortised bytes written per event constant. A ``jobs.json`` without a
``journal`` key is a pre-journal (version 1) file, one without ``journal_id`` names a journal
without a header: both are read as they are and migrated, once, by the first write.

A damaged snapshot or journal (bad JSON, an event that cannot apply) is never reset: it is copied
aside and reported with how to recover. So is a journal that is missing, empty, does not carry
the header its snapshot expects, or is shorter than the length its header says is committed,
and a stage whose ``jobs.json`` is missing beside a journal that holds events: each would
otherwise silently forget records (and a relaunch would submit twins of queued jobs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .. import _atomic, paths
from .._faults import crash_point
from ..config.settings import lock_mode
from ..errors import StoreError
from . import journal as jfile

FORMAT_VERSION = 1
COMPACT_MIN_BYTES = 256 * 1024
LOCK_TIMEOUT_S = 60


def now_iso() -> str:
    """The current time as ISO 8601 with its UTC offset."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class RecordState(str, Enum):
    """What the store knows about a job without asking the scheduler."""

    SUBMITTING = "submitting"   # intent written, scheduler not yet confirmed
    SUBMITTED = "submitted"
    CANCELLED = "cancelled"     # by us
    FINISHED = "finished"       # the local runner saw every task end

    def __str__(self) -> str:
        return self.value


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
    # The scheduler's array index of each task when it is not simply its position (an array
    # laid out to line up with its upstream array's indices); empty means ``0..n-1``.
    array_indices: list[int] = field(default_factory=list)
    # The artifact root the tasks build into; None in records written before roots were kept.
    artifact_path: str | None = None
    # Requirement overrides given with ``launch --set`` that apply to this job (already merged
    # into ``requirements``); empty when none were given.
    overrides: dict[str, Any] = field(default_factory=dict)
    # index -> what was first observed when the task ended (see experiments/tracking/outcomes.py);
    # written once per task and never rewritten, so history keeps what happened.
    ended: dict[str, dict[str, Any]] = field(default_factory=dict)
    experiment_file: str = ""  # the experiment file that launched it ("" for older records)

    def __post_init__(self) -> None:
        # Callers pass plain strings ("submitted"); keep the field an enum member.
        object.__setattr__(self, "state", RecordState(self.state))
    snapshot: str | None = None  # id of the code snapshot its tasks run in (None: live code)
    # When `gc` removed the job's logs and spec folder (the record and its ended states stay).
    collected_at: str | None = None
    throttle: int | None = None  # at most this many of its tasks at once (None: no throttle)
    # index -> the local runner's word for a task's end when its state alone does not say it
    # (TIMEOUT, OUT_OF_MEMORY), as Slurm's state column would
    task_raw: dict[str, str] = field(default_factory=dict)
    # How long after a task's end the scheduler can still requeue it (Slurm's MinJobAge, read
    # at submission; 0: for ever); a recorded failure is asked about again for that long.
    # None (older records, backends that cannot requeue): an end, once recorded, is final.
    requeue_window_s: int | None = None
    # The cluster that accepted it (Slurm's ClusterName); None: not recorded (older records,
    # backends without clusters). Commands run on another cluster never ask it or cancel it.
    cluster: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def log_path(self, index: int) -> Path:
        """The log file of task ``index`` (its position; the file bears its array index)."""
        return paths.task_log(Path(self.log_dir), self.job_id or "?", self.array_index(index))

    def array_index(self, position: int) -> int:
        """The scheduler's array index of the task at ``position`` in ``tasks``."""
        return self.array_indices[position] if self.array_indices else position

    @cached_property
    def packed(self) -> bool:
        """Whether some array task builds several artifacts (a pack: repeated indices)."""
        return len(set(self.array_indices)) < len(self.array_indices)

    def task_id(self, position: int) -> str:
        """Slurm's name of the task that builds the artifact at ``position``: ``<job>_<array
        index>`` (what squeue, sacct and Slurm's mails say; a pack's task builds several)."""
        return f"{self.job_id or '?'}_{self.array_index(position)}"

    def address(self, position: int) -> str:
        """How to name that one artifact's task unmistakably: its task id, followed by
        ``/<relpath>`` when the task is a pack's (``cat 3351_1/P/i=7``)."""
        task = self.task_id(position)
        return f"{task}/{self.tasks[position][1]}" if self.packed else task

    def positions(self, array_index: int) -> list[int]:
        """The positions of the artifacts that Slurm's task ``array_index`` builds."""
        if not self.array_indices:
            return [array_index] if 0 <= array_index < len(self.tasks) else []
        return [i for i, a in enumerate(self.array_indices) if a == array_index]

    def log_section(self, position: int) -> str | None:
        """The relpath whose section of the task's log is this artifact's, when the log is a
        pack's (several artifacts, one after the other); None when the log is its own."""
        return self.tasks[position][1] if self.packed else None


def _plain(changes: dict[str, Any]) -> dict[str, Any]:
    """Field changes as JSON values (enum members become their strings)."""
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in changes.items()}


@dataclass
class _Stage:
    """The replayed state of one stage and where in its files it was read up to."""

    snapshot_key: tuple[int, int, int] | None = None   # inode, size, mtime of jobs.json
    snapshot_size: int = 0
    legacy: bool = True                                 # no journal key (or no file yet)
    generation: int = 0
    ident: str = ""                                     # the journal's id ("": no header)
    offset: int = 0                                     # committed bytes of the journal read
    jobs: list[dict[str, Any]] = field(default_factory=list)
    index: dict[str, list[int]] = field(default_factory=dict)

    def add(self, raw: dict[str, Any]) -> None:
        self.index.setdefault(str(raw.get("name")), []).append(len(self.jobs))
        self.jobs.append(raw)

    def reindex(self) -> None:
        self.index = {}
        for i, raw in enumerate(self.jobs):
            self.index.setdefault(str(raw.get("name")), []).append(i)


class Store:
    """Job records of one project, one snapshot and journal per stage (see the module doc)."""

    def __init__(self, home: Path, project: str, umask: int = 0o077) -> None:
        self.home = home
        self.project = project
        self.mode = 0o666  # the process umask (from the config) makes data files private
        self.lock_mode = lock_mode(umask)
        self._cache: dict[str, _Stage] = {}

    def _file(self, stage: str) -> Path:
        return paths.jobs_file(self.home, self.project, stage)

    def _journal(self, stage: str, generation: int) -> Path:
        return paths.journal_file(self.home, self.project, stage, generation)

    def stages(self) -> list[str]:
        """Stages that have a jobs.json (or a journal), in name order."""
        root = paths.project_dir(self.home, self.project)
        if not root.is_dir():
            return []
        found = {p.parent.name for p in root.glob("*/jobs.json")}
        # a journal without its jobs.json is read (and reported) rather than skipped
        found |= {p.parent.name for p in root.glob(f"*/{paths.JOURNAL_PREFIX}*")}
        return sorted(found)

    def records(self, stage: str) -> list[JobRecord]:
        """The records of ``stage`` (empty when nothing was ever submitted)."""
        return [JobRecord.from_dict(_detached(r)) for r in self._refresh(stage).jobs]

    def all_records(self, stages: Sequence[str] | None = None) -> list[JobRecord]:
        return [r for s in (stages if stages is not None else self.stages())
                for r in self.records(s)]

    def add(self, record: JobRecord) -> None:
        """Append a record (under the stage's lock, one journal line)."""
        with self._locked(record.stage) as st:
            self._append(record.stage, st, {"op": "add", "record": record.to_dict()})

    def update(self, stage: str, name: str, **changes: Any) -> JobRecord:
        """Change fields of the record called ``name`` and return the new record."""
        return self.update_many(stage, {name: changes})[name]

    def update_many(self, stage: str, changes: dict[str, dict[str, Any]]) -> dict[str, JobRecord]:
        """Apply ``{record name: {field: value}}`` as one event (all or nothing)."""
        with self._locked(stage) as st:
            missing = sorted(set(changes) - set(st.index))
            if missing:
                raise StoreError(f"{self._file(stage)} has no job named {missing[0]}")
            out: dict[str, JobRecord] = {}
            for name, change in changes.items():  # validate before anything is written
                for i in st.index[name]:
                    out[name] = replace(JobRecord.from_dict(_detached(st.jobs[i])), **change)
            plain = {n: _plain(c) for n, c in changes.items()}
            self._append(stage, st, {"op": "update", "changes": plain})
        return out

    def remove(self, stage: str, names: set[str]) -> None:
        """Drop records (used for intents that never reached the scheduler)."""
        with self._locked(stage) as st:
            if set(names) & set(st.index):
                self._append(stage, st, {"op": "remove", "names": sorted(names)})

    def compact(self, stage: str) -> None:
        """Fold the journal into a fresh snapshot now (writes do this by themselves)."""
        with self._locked(stage) as st:
            self._write_snapshot(stage, st)

    # -- locking and writing -------------------------------------------------------------
    @contextmanager
    def _locked(self, stage: str) -> Iterator[_Stage]:
        path = self._file(stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S, mode=self.lock_mode)
        try:
            lock.acquire()
        except Timeout:
            raise StoreError(f"could not lock {path} within {LOCK_TIMEOUT_S} s; another launcher "
                             f"may be stuck: check it, or delete {path}.lock if none runs"
                             ) from None
        try:
            st = self._refresh(stage)
            if st.legacy or not st.ident:  # first write: a snapshot naming a checked journal
                self._write_snapshot(stage, st)
            yield st
        except BaseException:
            self._cache.pop(stage, None)  # memory may be ahead of the files: re-read next time
            raise
        finally:
            lock.release()

    def _append(self, stage: str, st: _Stage, event: dict[str, Any]) -> None:
        """Write one event line, commit it with its newline, fsync, record the committed length
        in the journal's header, then apply it."""
        line = json.dumps(event, ensure_ascii=False).encode("utf-8")
        journal = self._journal(stage, st.generation)
        try:  # never created here: the snapshot's write made it, so missing means lost
            fd = os.open(journal, os.O_WRONLY)
        except FileNotFoundError:
            raise jfile.lost(journal, "is missing (jobs.json names it)") from None
        try:
            size = os.fstat(fd).st_size
            if size < st.offset:
                raise jfile.lost(journal, f"is shorter ({size} bytes) than the {st.offset} "
                                          "bytes read from it")
            if size > st.offset:
                os.ftruncate(fd, st.offset)  # cut a torn line left by a crashed writer
            os.lseek(fd, st.offset, os.SEEK_SET)
            _write_all(fd, line)
            crash_point("jobs-json-write")
            _write_all(fd, b"\n")
            os.fsync(fd)
            jfile.set_committed(fd, jfile.layout(st.generation, st.ident),
                                st.offset + len(line) + 1)
        finally:
            os.close(fd)
        st.offset += len(line) + 1
        _apply(st, event, journal)
        if st.offset > max(COMPACT_MIN_BYTES, st.snapshot_size):
            self._write_snapshot(stage, st)

    def _write_snapshot(self, stage: str, st: _Stage) -> None:
        """Replace jobs.json by the current state naming a new journal (its header written
        first); drop the old journals."""
        path = self._file(stage)
        generation = max([st.generation, *self._journal_generations(stage)]) + 1
        ident = os.urandom(8).hex()
        head = jfile.create(self._journal(stage, generation), generation, ident, self.mode)
        payload = {"version": FORMAT_VERSION, "project": self.project, "journal": generation,
                   "journal_id": ident, "jobs": st.jobs}
        data = (json.dumps(payload, ensure_ascii=False) + "\n").encode("utf-8")
        _atomic.write_bytes(str(path), data, mode=self.mode, crash_label="jobs-snapshot-write")
        st.generation, st.ident, st.offset, st.legacy = generation, ident, head.size, False
        st.snapshot_size = len(data)
        st.snapshot_key = _key(os.stat(path))
        for gen in self._journal_generations(stage):  # folded in, or stale from a crash
            if gen != generation:
                _unlink(self._journal(stage, gen))

    def _journal_generations(self, stage: str) -> list[int]:
        out = []
        for p in self._file(stage).parent.glob(f"{paths.JOURNAL_PREFIX}*{paths.JOURNAL_SUFFIX}"):
            number = p.name[len(paths.JOURNAL_PREFIX):-len(paths.JOURNAL_SUFFIX)]
            if number.isdigit():
                out.append(int(number))
        return out

    # -- reading --------------------------------------------------------------------------
    def _refresh(self, stage: str) -> _Stage:
        """The stage's state, reading only what changed since the last call when possible."""
        for _ in range(5):  # a compaction between reading the snapshot and its journal: retry
            st = self._cache.get(stage) or _Stage()
            try:
                st = self._reload_snapshot(stage, st)
                if not st.legacy:
                    self._read_journal(stage, st)
            except FileNotFoundError:
                self._cache.pop(stage, None)
                continue
            self._cache[stage] = st
            return st
        raise StoreError(f"{self._file(stage)} kept changing while being read; try again")

    def _reload_snapshot(self, stage: str, st: _Stage) -> _Stage:
        path = self._file(stage)
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            self._check_no_orphan(stage)
            return _Stage()
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None
        with fh:
            key = _key(os.fstat(fh.fileno()))
            if key == st.snapshot_key:
                return st
            raw = fh.read()
        return self._parse_snapshot(path, raw, key)

    def _parse_snapshot(self, path: Path, raw: bytes, key: tuple[int, int, int]) -> _Stage:
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise _damaged(path, f"not UTF-8: {exc.reason}") from None
        except ValueError as exc:
            raise _damaged(path, str(exc)) from None
        if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
            raise _damaged(path, "not a jobs file (no 'jobs' list)")
        generation = data.get("journal")
        if generation is not None and (not isinstance(generation, int) or generation < 1):
            raise _damaged(path, f"bad journal number {generation!r}")
        ident = data.get("journal_id", "")
        if not isinstance(ident, str) or not ident.isalnum() and ident:
            raise _damaged(path, f"bad journal id {ident!r}")
        st = _Stage(snapshot_key=key, snapshot_size=len(raw), legacy=generation is None,
                    generation=generation or 0, ident=ident, jobs=list(data["jobs"]))
        st.reindex()
        return st

    def _check_no_orphan(self, stage: str) -> None:
        """No jobs.json: fine unless a journal beside it holds events (jobs.json was deleted)."""
        for gen in sorted(self._journal_generations(stage)):
            journal = self._journal(stage, gen)
            if jfile.orphan_events(journal):
                raise jfile.lost(self._file(stage),
                                 f"is missing while its journal {journal.name} holds events")

    def _read_journal(self, stage: str, st: _Stage) -> None:
        """Replay the journal's committed lines after ``st.offset`` (a torn last line waits);
        a journal that is missing, headless or shorter than its committed length is lost."""
        journal = self._journal(stage, st.generation)
        try:
            fh = open(journal, "rb")
        except FileNotFoundError:
            # Compacted away under us means: re-read the snapshot (the caller retries).
            if st.offset or _key(os.stat(self._file(stage))) != st.snapshot_key:
                raise
            if st.ident:
                raise jfile.lost(journal, "is missing (jobs.json names it)") from None
            return  # a journal without a header is created by its first event
        with fh:
            committed = 0
            if st.ident:
                committed = jfile.committed(fh.fileno(), journal, st.generation, st.ident)
                st.offset = st.offset or jfile.layout(st.generation, st.ident).size
            size = os.fstat(fh.fileno()).st_size
            fh.seek(st.offset)
            tail = fh.read()
        end = tail.rfind(b"\n") + 1
        if size < st.offset or st.offset + end < committed:
            raise jfile.lost(journal, f"is shorter ({size} bytes) than the "
                                      f"{max(committed, st.offset)} bytes committed to it")
        for line in tail[:end].splitlines():
            try:
                event = json.loads(line.decode("utf-8"))
            except ValueError as exc:  # UnicodeDecodeError is a ValueError
                raise _damaged(journal, f"unreadable line at byte {st.offset}: {exc}") from None
            _apply(st, event, journal)
            st.offset += len(line) + 1


def _apply(st: _Stage, event: Any, where: Path) -> None:
    """Apply one journal event to the in-memory state."""
    op = event.get("op") if isinstance(event, dict) else None
    if op == "add" and isinstance(event.get("record"), dict):
        st.add(event["record"])
    elif op == "update" and isinstance(event.get("changes"), dict):
        for name, change in event["changes"].items():
            if name not in st.index or not isinstance(change, dict):
                raise _damaged(where, f"update of unknown job {name!r}")
            for i in st.index[name]:
                st.jobs[i] = {**st.jobs[i], **change}
    elif op == "remove" and isinstance(event.get("names"), list):
        gone = set(event["names"])
        st.jobs = [r for r in st.jobs if r.get("name") not in gone]
        st.reindex()
    else:
        raise _damaged(where, f"unknown event {str(event)[:80]}")


def _detached(raw: dict[str, Any]) -> dict[str, Any]:
    """A copy of a cached record whose lists and dicts a caller may change without harm."""
    out = dict(raw)
    for key, value in raw.items():
        if isinstance(value, list):
            out[key] = [list(v) if isinstance(v, list) else v for v in value]
        elif isinstance(value, dict):
            out[key] = dict(value)
    return out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _key(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _damaged(path: Path, why: str) -> StoreError:
    """Copy a damaged tracking file aside and say how to recover."""
    return jfile.damaged(path, why)
