"""Task specs: what each array task builds, readable in O(1) by the worker.

A spec directory holds ``job.json`` (what all tasks share), ``tasks.jsonl`` (one JSON line per
task) and ``tasks.idx`` (little-endian uint64 byte offsets, one per task plus the end), so task
``i`` of a 50,000-task array reads one small slice instead of parsing a giant file.
Standard library only: the worker imports this on every task start.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable

from .. import _atomic
from ..paths import SPEC_INDEX, SPEC_TASKS

TYPE_CHECKING = False  # typing costs every task's worker a few ms: only mypy reads this
if TYPE_CHECKING:
    from typing import Any

HEADER = "job.json"
_OFF = struct.Struct("<Q")


def write_spec(directory: str, header: dict[str, Any], tasks: Iterable[dict[str, Any]]) -> int:
    """Write a spec directory; returns the number of tasks."""
    os.makedirs(directory, exist_ok=True)
    offsets = [0]
    chunks = []
    for task in tasks:
        line = (json.dumps(task, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        chunks.append(line)
        offsets.append(offsets[-1] + len(line))
    _atomic.write_bytes(os.path.join(directory, SPEC_TASKS), b"".join(chunks), durable=False)
    _atomic.write_bytes(os.path.join(directory, SPEC_INDEX),
                        b"".join(_OFF.pack(o) for o in offsets), durable=False)
    _atomic.write_json(os.path.join(directory, HEADER), header, durable=False)
    return len(offsets) - 1


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


def read_header(directory: str) -> dict[str, Any]:
    with open(os.path.join(directory, HEADER), encoding="utf-8") as fh:
        return json.load(fh)  # type: ignore[no-any-return]


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


def index_header(indices: list[int]) -> dict[str, Any]:
    """The header keys that map array indices to tasks, given each task's array index.

    Unpacked: ``indices`` (one per task). Packed (consecutive tasks share an index): ``packs``,
    the position where each pack starts plus the end, and ``indices`` (one per pack) only when
    the packs' indices are not ``0..n-1``.
    """
    if len(set(indices)) == len(indices):
        return {"indices": indices}
    starts = [p for p, i in enumerate(indices) if p == 0 or indices[p - 1] != i]
    per_pack = [indices[p] for p in starts]
    out: dict[str, Any] = {"packs": [*starts, len(indices)]}
    if per_pack != list(range(len(per_pack))):
        out["indices"] = per_pack
    return out


def positions(header: dict[str, Any], index: int) -> range:
    """The positions in the spec of the tasks at array ``index``: one, or a whole pack's."""
    packs = header.get("packs")
    first = position(header, index)
    if not packs:
        return range(first, first + 1)
    if not 0 <= first < len(packs) - 1:
        raise IndexError(f"array index {index} is not one of this spec's packs")
    return range(int(packs[first]), int(packs[first + 1]))


def position(header: dict[str, Any], index: int) -> int:
    """The position in the spec of the task at array ``index`` (the same unless the header
    lists ``indices``: an array laid out on its upstream array's indices); for a packed spec,
    the pack's number."""
    indices = header.get("indices")
    if not indices:
        return index
    try:
        return list(indices).index(index)
    except ValueError:
        raise IndexError(f"array index {index} is not one of this spec's tasks") from None
