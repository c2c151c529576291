"""Task specs: what the launcher hands the worker, readable in O(1) by the worker.

A spec directory holds ``job.json`` (the :class:`SpecHeader`: what all tasks share),
``tasks.jsonl`` (one JSON line per task) and ``tasks.idx`` (little-endian uint64 byte offsets,
one per task plus the end), so task ``i`` of a 50,000-task array reads one small slice instead
of parsing a giant file. The header is written by ``LaunchContext.prepare`` and read, through
:func:`read_header`, by the worker, its provenance block and the Slurm dependents' files; no
other module spells its keys.

Versions. ``job.json`` carries ``version`` (:data:`VERSION`). A header without one was written
by a release before versions existed, for a job that may still be queued: it is read as
version 1, which is exactly what those releases wrote (the same keys, ``version`` apart), so
an upgrade never fails the jobs already queued. A header of a newer version is refused with a
:class:`~experiments.errors.SpecError` naming the file: its fields may mean what this code
cannot know. Unknown keys of a known version are ignored.

Standard library only, and cheap to import: the worker imports this on every task start.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Sequence
from itertools import accumulate

from .. import _atomic
from ..errors import SpecError
from ..paths import SPEC_INDEX, SPEC_TASKS

TYPE_CHECKING = False  # typing costs every task's worker a few ms: only mypy reads this
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

HEADER = "job.json"
VERSION = 1  # the header format this code writes, and the newest it reads
_OFF = struct.Struct("<Q")
_REQUIRED = ("project", "stage", "job_name", "artifact_path", "code_path")


class _Fields:
    """``==`` and ``repr`` over a class's ``__slots__``: what ``@dataclass`` would generate,
    without the ~1.5 ms its class creation (three classes) adds to every task's start."""

    __slots__: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Checkpoint(_Fields):
    """Checkpointing before the time limit: the signal the task gets, and how often the worker
    may requeue it (``requeue``: the artifact's ``requeue`` requirement allows it)."""

    __slots__ = ("signal", "max_requeues", "requeue")

    def __init__(self, signal: str, max_requeues: int = 3, requeue: bool = True) -> None:
        self.signal = signal
        self.max_requeues = max_requeues
        self.requeue = requeue


class CodeSnapshot(_Fields):
    """The launch's frozen code: its content id, its tree, and the git state it was taken at
    (``commit``, ``branch``, ``dirty``, ``diff_hash``; None outside git)."""

    __slots__ = ("id", "path", "git")

    def __init__(self, id: str, path: str, git: dict[str, Any] | None = None) -> None:
        self.id = id
        self.path = path
        self.git = git


class SpecHeader(_Fields):
    """What every task of one job shares: where it builds, which code it runs, how it is laid
    out on the scheduler's array indices, and what the worker does around the commands.

    A typed record, read-only by convention (a plain slotted class rather than a frozen
    dataclass: see :class:`_Fields`).
    """

    __slots__ = ("project", "stage", "job_name", "artifact_path", "code_path", "umask",
                 "snapshot", "live_code_path", "trusted_uids", "trusted_gids", "indices",
                 "packs", "setup", "checkpoint", "version")

    def __init__(self, project: str, stage: str, job_name: str, artifact_path: str,
                 code_path: str, *, umask: int = 0o077, snapshot: CodeSnapshot | None = None,
                 live_code_path: str | None = None, trusted_uids: tuple[int, ...] = (),
                 trusted_gids: tuple[int, ...] = (), indices: tuple[int, ...] = (),
                 packs: tuple[int, ...] = (), setup: tuple[str, ...] = (),
                 checkpoint: Checkpoint | None = None, version: int = VERSION) -> None:
        self.project = project
        self.stage = stage
        self.job_name = job_name
        self.artifact_path = artifact_path
        self.code_path = code_path  # where commands run: the snapshot's tree when there is one
        self.umask = umask
        self.snapshot = snapshot
        self.live_code_path = live_code_path  # with a snapshot: the experiment's own code
        self.trusted_uids = trusted_uids  # whose done markers count besides ours
        self.trusted_gids = trusted_gids
        self.indices = indices  # the array index of each task (or pack), unless 0..n-1
        self.packs = packs  # where each pack starts, plus the end; () when unpacked
        self.setup = setup  # run by the worker before each command (no batch script)
        self.checkpoint = checkpoint
        self.version = version

    def to_json(self) -> dict[str, Any]:
        """The header as ``job.json`` holds it (optional keys only when set)."""
        snap = self.snapshot
        out: dict[str, Any] = {
            "version": self.version, "project": self.project, "stage": self.stage,
            "job_name": self.job_name, "artifact_path": self.artifact_path,
            "code_path": self.code_path, "umask": self.umask,
            "snapshot": None if snap is None else {"id": snap.id, "path": snap.path,
                                                   "git": snap.git},
            "trusted_uids": list(self.trusted_uids), "trusted_gids": list(self.trusted_gids)}
        if self.live_code_path is not None:
            out["live_code_path"] = self.live_code_path
        for key in ("indices", "packs", "setup"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.checkpoint is not None:
            ck = self.checkpoint
            out["checkpoint"] = {"signal": ck.signal, "max_requeues": ck.max_requeues,
                                 "requeue": ck.requeue}
        return out

    @classmethod
    def from_json(cls, data: Any, where: str) -> SpecHeader:
        """The header ``data`` (read from the file ``where``) holds; a :class:`SpecError`
        naming ``where`` when it is damaged or of a newer version (see the module docstring)."""
        if not isinstance(data, dict):
            raise SpecError(f"spec {where} is damaged (not a JSON object); relaunch the job")
        version = _version(data.get("version", 1), where)
        missing = [k for k in _REQUIRED if not isinstance(data.get(k), str)]
        if missing:
            raise SpecError(f"spec {where} is damaged ({missing[0]!r} is missing or not a "
                            "string); relaunch the job")
        try:
            return cls(data["project"], data["stage"], data["job_name"], data["artifact_path"],
                       data["code_path"], umask=int(data.get("umask", 0o077)),
                       snapshot=_snapshot(data.get("snapshot")),
                       live_code_path=_opt_str(data.get("live_code_path")),
                       trusted_uids=_ints(data.get("trusted_uids")),
                       trusted_gids=_ints(data.get("trusted_gids")),
                       indices=_ints(data.get("indices")), packs=_ints(data.get("packs")),
                       setup=tuple(str(line) for line in data.get("setup") or ()),
                       checkpoint=_checkpoint(data.get("checkpoint")), version=version)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SpecError(f"spec {where} is damaged ({type(exc).__name__}: {exc}); relaunch "
                            "the job") from None

    def position(self, index: int) -> int:
        """The position in the spec of the task at array ``index`` (the same unless the header
        lists ``indices``: an array laid out on its upstream array's indices); for a packed
        spec, the pack's number."""
        if not self.indices:
            return index
        try:
            return self.indices.index(index)
        except ValueError:
            raise IndexError(f"array index {index} is not one of this spec's tasks") from None

    def positions(self, index: int) -> range:
        """The positions in the spec of the tasks at array ``index``: one, or a whole pack's."""
        first = self.position(index)
        if not self.packs:
            return range(first, first + 1)
        if not 0 <= first < len(self.packs) - 1:
            raise IndexError(f"array index {index} is not one of this spec's packs")
        return range(self.packs[first], self.packs[first + 1])


def _version(value: Any, where: str) -> int:
    """The header's format version, refused when it is not one this code reads."""
    if type(value) is not int or value < 1:
        raise SpecError(f"spec {where} is damaged (version {value!r} is not a format "
                        "version); relaunch the job")
    if value > VERSION:
        raise SpecError(f"spec {where} has format version {value}, written by a newer version "
                        f"of experiments (this one reads up to version {VERSION}); run the "
                        "job with the version that launched it, or relaunch it with this one")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _ints(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value or ())


def _snapshot(value: Any) -> CodeSnapshot | None:
    if not value:
        return None
    git = value.get("git")
    return CodeSnapshot(str(value["id"]), str(value["path"]), dict(git) if git else None)


def _checkpoint(value: Any) -> Checkpoint | None:
    if not value:
        return None
    return Checkpoint(str(value["signal"]), int(value.get("max_requeues", 3)),
                      value.get("requeue", True) is not False)


def array_layout(indices: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(indices, packs)`` of a header, given each task's array index.

    Unpacked: ``indices`` (one per task). Packed (consecutive tasks share an index): ``packs``,
    the position where each pack starts plus the end, and ``indices`` (one per pack) only when
    the packs' indices are not ``0..n-1``.
    """
    if len(set(indices)) == len(indices):
        return tuple(indices), ()
    starts = [p for p, i in enumerate(indices) if p == 0 or indices[p - 1] != i]
    per_pack = tuple(indices[p] for p in starts)
    return (() if per_pack == tuple(range(len(per_pack))) else per_pack,
            (*starts, len(indices)))


def write_spec(directory: str, header: SpecHeader, tasks: Iterable[dict[str, Any]]) -> int:
    """Write a spec directory; returns the number of tasks."""
    os.makedirs(directory, exist_ok=True)
    encode = _line_encoder()
    lines = [encode(task) + "\n" for task in tasks]
    text = "".join(lines)
    if text.isascii():  # the common case: one encode for the file, a character is a byte
        data, sizes = text.encode("ascii"), map(len, lines)
    else:
        encoded = [line.encode() for line in lines]
        data, sizes = b"".join(encoded), map(len, encoded)
    offsets = list(accumulate(sizes, initial=0))
    _atomic.write_bytes(os.path.join(directory, SPEC_TASKS), data, durable=False)
    _atomic.write_bytes(os.path.join(directory, SPEC_INDEX),
                        struct.pack(f"<{len(offsets)}Q", *offsets), durable=False)
    _atomic.write_json(os.path.join(directory, HEADER), header.to_json(), durable=False)
    return len(offsets) - 1


def _line_encoder() -> Callable[[Any], str]:
    """The encoder of a task line (compact, UTF-8 as it is): json's C encoder made once, where
    ``json.dumps`` would make one per line (a third of a line's cost), else the Python one."""
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without json's C accelerator
        return encoder.encode
    chunks = make({}, encoder.default, json.encoder.encode_basestring, None, ":", ",",
                  False, False, True)
    return lambda task: "".join(chunks(task, 0))


def read_header(directory: str) -> SpecHeader:
    """The header of the spec in ``directory`` (``OSError`` when it cannot be read,
    :class:`SpecError` when it is damaged or of a newer version)."""
    path = os.path.join(directory, HEADER)
    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except ValueError as exc:
            raise SpecError(f"spec {path} is damaged ({exc}); relaunch the job") from None
    return SpecHeader.from_json(data, path)


_DESCRIBE = {
    "create_file": "create file {path}",
    "run_command": "run `{command}`",
    "upload": "upload {src} to {url}",
    "download": "download {url} to {dst}",
}


def describe_step(step: dict[str, Any]) -> str:
    """One line saying what a step (in its JSON form) does; an unknown kind (from a newer
    spec) or a malformed step: its kind."""
    template = _DESCRIBE.get(str(step.get("kind")))
    try:
        return template.format(**step) if template else str(step.get("kind"))
    except (KeyError, IndexError, ValueError):
        return str(step.get("kind"))


def read_task(directory: str, index: int) -> dict[str, Any]:
    """Task ``index`` of the spec, reading only its own line."""
    if index < 0:
        raise IndexError(f"task index {index} is out of range (negative) for spec {directory}")
    with open(os.path.join(directory, SPEC_INDEX), "rb") as fh:
        fh.seek(index * _OFF.size)
        raw = fh.read(2 * _OFF.size)
    if index < 0 or len(raw) != 2 * _OFF.size:
        raise IndexError(f"task index {index} is out of range for spec {directory}")
    start, end = _OFF.unpack(raw[:8])[0], _OFF.unpack(raw[8:])[0]
    with open(os.path.join(directory, SPEC_TASKS), "rb") as fh:
        fh.seek(start)
        return json.loads(fh.read(end - start))  # type: ignore[no-any-return]
