"""The store: what was submitted, per project and stage, as a snapshot plus an append-only journal.

Each stage folder holds::

    jobs.json                  snapshot: {"version": 2, "project", "journal": G,
                               "journal_id": I, "jobs": [...]}
    jobs.journal-G.jsonl       a header naming G and I, then the events since that snapshot,
                               one JSON object per line (see experiments/tracking/journal.py)
    jobs.json.lock             serialises writers of the stage

Why a journal: a launch records two events per submission (the intent, then the job id). Rewriting
the whole snapshot for each made every ``sbatch`` cost O(history); appending one line costs the
same whatever the history. The state of a stage is the snapshot with the journal's events replayed:
``{"op": "add", "record": {...}}``, ``{"op": "update", "changes": {name: {field: value}}}`` and
``{"op": "remove", "names": [...]}``. A record's per-task fields (``tasks``, ``ended``) are kept
as columns, format 2 (see experiments/tracking/record_format.py); format-1 records (one pair and
one dict per task), written by older releases for jobs that may still be queued, read the same.

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
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .. import _atomic, paths
from .._faults import crash_point
from ..config.settings import lock_mode
from ..errors import StoreError
from . import journal as jfile
from . import record_format as rf
from .record_format import JobRecord as JobRecord
from .record_format import RecordState as RecordState
from .record_format import now_iso as now_iso

COMPACT_MIN_BYTES = 256 * 1024
LOCK_TIMEOUT_S = 60


def _plain(changes: dict[str, Any]) -> dict[str, Any]:
    """Field changes as the store writes them (enum members become their strings, per-task
    fields columns)."""
    return rf.encode_fields({k: (v.value if isinstance(v, Enum) else v)
                             for k, v in changes.items()})


@dataclass
class _Stage:
    """The replayed state of one stage and where in its files it was read up to."""

    snapshot_key: tuple[int, int, int] | None = None   # inode, size, mtime of jobs.json
    snapshot_size: int = 0
    legacy: bool = True                                 # no journal key (or no file yet)
    generation: int = 0
    ident: str = ""                                     # the journal's id ("": no header)
    offset: int = 0                                     # committed bytes of the journal read
    unsynced: bool = False                              # events of ours not fsynced yet
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
        jobs = self._refresh(stage).jobs
        try:
            return [JobRecord.from_dict(r) for r in jobs]
        except (TypeError, ValueError, AttributeError) as exc:  # columns that do not fit
            raise StoreError(f"{self._file(stage)} (or its journal) holds a damaged job record "
                             f"({exc}); restore it from a backup (moving it aside forgets the "
                             "stage's jobs: queued ones would no longer be tracked)") from None

    def all_records(self, stages: Sequence[str] | None = None) -> list[JobRecord]:
        return [r for s in (stages if stages is not None else self.stages())
                for r in self.records(s)]

    def add(self, record: JobRecord) -> None:
        """Append a record (under the stage's lock, one journal line)."""
        with self._locked(record.stage) as st:
            self._append(record.stage, st, {"op": "add", "record": record.stored()})

    def update(self, stage: str, name: str, *, durable: bool = True,
               **changes: Any) -> JobRecord:
        """Change fields of the record called ``name`` and return the new record."""
        return self.update_many(stage, {name: changes}, durable=durable)[name]

    def update_many(self, stage: str, changes: dict[str, dict[str, Any]], *,
                    durable: bool = True) -> dict[str, JobRecord]:
        """Apply ``{record name: {field: value}}`` as one event (all or nothing).

        ``durable=False``: committed (a crash of this process keeps it) but not fsynced, so a
        power cut may lose it; the next durable event, a snapshot or :meth:`sync` makes it
        durable too. Only for changes whose loss is recovered from (a confirmation: the intent
        stays, and the next launch finds the job by its name)."""
        with self._locked(stage) as st:
            missing = sorted(set(changes) - set(st.index))
            if missing:
                raise StoreError(f"{self._file(stage)} has no job named {missing[0]}")
            out: dict[str, JobRecord] = {}
            for name, change in changes.items():  # validate before anything is written
                for i in st.index[name]:
                    out[name] = replace(JobRecord.from_dict(st.jobs[i]), **change)
            plain = {n: _plain(c) for n, c in changes.items()}
            self._append(stage, st, {"op": "update", "changes": plain}, durable)
        return out

    def remove(self, stage: str, names: set[str]) -> None:
        """Drop records (used for intents that never reached the scheduler)."""
        with self._locked(stage) as st:
            if set(names) & set(st.index):
                self._append(stage, st, {"op": "remove", "names": sorted(names)})

    def sync(self) -> None:
        """Make the events this store committed without an fsync (``durable=False``) durable,
        and say so in their journals' headers: a launch calls it before it lets go of its lock,
        so a journal at rest is committed to its last line."""
        for stage in [name for name, st in self._cache.items() if st.unsynced]:
            with self._locked(stage) as st:
                if st.unsynced:
                    fd = os.open(self._journal(stage, st.generation), os.O_WRONLY)
                    try:
                        os.fsync(fd)
                        jfile.set_committed(fd, jfile.layout(st.generation, st.ident), st.offset)
                    finally:
                        os.close(fd)
                    st.unsynced = False

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

    def _append(self, stage: str, st: _Stage, event: dict[str, Any],
                durable: bool = True) -> None:
        """Write one event line, commit it with its newline, fsync, record the committed length
        in the journal's header, then apply it (``durable=False``: neither of the last two; the
        header may lag behind the file, never run ahead of what is on disk)."""
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
            if durable:  # fsync covers earlier non-durable lines too: commit them with it
                os.fsync(fd)
                jfile.set_committed(fd, jfile.layout(st.generation, st.ident),
                                    st.offset + len(line) + 1)
            st.unsynced = not durable
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
        st.jobs = [rf.upgraded(r) for r in st.jobs]  # format-1 records: columns from now on
        payload = {"version": rf.FORMAT_VERSION, "project": self.project, "journal": generation,
                   "journal_id": ident, "jobs": st.jobs}
        data = (json.dumps(payload, ensure_ascii=False) + "\n").encode("utf-8")
        _atomic.write_bytes(str(path), data, mode=self.mode, crash_label="jobs-snapshot-write")
        st.generation, st.ident, st.offset, st.legacy = generation, ident, head.size, False
        st.snapshot_size = len(data)
        st.snapshot_key = _key(os.stat(path))
        for gen in self._journal_generations(stage):  # folded in, or stale from a crash
            if gen != generation:
                self._journal(stage, gen).unlink(missing_ok=True)

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
        version = data.get("version", 1)
        if isinstance(version, int) and version > rf.FORMAT_VERSION:
            raise StoreError(f"{path} has format version {version}, written by a newer version "
                             f"of experiments (this one reads up to {rf.FORMAT_VERSION}); use "
                             "that version for this project")
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _key(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


_damaged = jfile.damaged  # copy a damaged tracking file aside and say how to recover
