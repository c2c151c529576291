"""Reading task logs in bounded memory: stream, tail, follow.

Logs can be gigabytes (a chatty training loop), so nothing here reads a whole file: ``stream``
copies a byte range in fixed-size chunks, ``tail_start`` walks backwards from the end one block at
a time to find where the last N lines begin, and ``follow`` yields what a growing log appends.
Bytes that are not UTF-8 become U+FFFD, decoded incrementally so a character split across two
chunks is not mangled.

``show`` is what ``cat`` prints: a long log's last ``DEFAULT_LINES`` lines under one header line
that says how many lines were left out and that ``--full`` prints everything. A pack's log (one
task building several artifacts) is cut into one section per artifact; ``sections`` finds an
artifact's and ``show_sections`` prints them the same way. ``early_failure`` finds why a task
failed before any build started (no python on the node, a spec pointing outside the root).
"""

from __future__ import annotations

import codecs
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from ..worker.common import EARLY_FAILURE, UNRECORDED_FAILURE, section_of

DEFAULT_LINES = 200
CHUNK_BYTES = 256 * 1024
MAX_TAIL_BYTES = 4 * 1024 * 1024   # the last lines are cut to this when they are longer
FULL_FLAG = "--full"


@dataclass(frozen=True)
class Shown:
    """What ``show`` printed: bytes ``start``..``end`` of the log, after what it left out."""

    start: int
    end: int
    skipped_lines: int | None   # None when not counted
    skipped_bytes: int


def _decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


def _chunks(fh: BinaryIO, start: int, end: int | None, chunk_bytes: int) -> Iterator[bytes]:
    """Raw bytes of ``fh`` from ``start`` up to ``end`` (EOF when None), one chunk at a time."""
    fh.seek(start)
    pos = start
    while end is None or pos < end:
        want = chunk_bytes if end is None else min(chunk_bytes, end - pos)
        data = fh.read(want)
        if not data:
            return
        pos += len(data)
        yield data


def stream(path: str | os.PathLike[str], out: IO[str], start: int = 0, end: int | None = None,
           chunk_bytes: int = CHUNK_BYTES) -> int:
    """Write the log from byte ``start`` to ``end`` (or its current end) to ``out``.

    Returns the byte offset reached, where a ``follow`` can continue.
    """
    decoder = _decoder()
    pos = start
    with open(path, "rb") as fh:
        for data in _chunks(fh, start, end, chunk_bytes):
            text = decoder.decode(data)  # a named temporary: twice as fast as a nested call
            out.write(text)
            pos += len(data)
    out.write(decoder.decode(b"", final=True))
    return pos


def tail_start(path: str | os.PathLike[str], lines: int, block_bytes: int = CHUNK_BYTES,
               max_bytes: int = MAX_TAIL_BYTES) -> int:
    """The byte offset where the last ``lines`` lines begin, reading backwards block by block.

    A final newline does not start an empty last line. If those lines span more than
    ``max_bytes``, the offset is ``max_bytes`` before the end (the first line shown is cut).
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if lines <= 0 or size == 0:
            return size
        fh.seek(size - 1)
        end = size - 1 if fh.read(1) == b"\n" else size
        found, pos = 0, end
        while pos > 0 and size - pos < max_bytes:
            n = min(block_bytes, pos)
            pos -= n
            fh.seek(pos)
            data = fh.read(n)
            idx = len(data)
            while (idx := data.rfind(b"\n", 0, idx)) >= 0:
                found += 1
                if found == lines:
                    return max(pos + idx + 1, size - max_bytes)
        return max(0, size - max_bytes)


def count_lines(path: str | os.PathLike[str], end: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """How many newlines the first ``end`` bytes of the log hold (read in chunks)."""
    with open(path, "rb") as fh:
        return sum(data.count(b"\n") for data in _chunks(fh, 0, end, chunk_bytes))


def tail(path: str | os.PathLike[str], lines: int = DEFAULT_LINES,
         max_bytes: int = MAX_TAIL_BYTES) -> str:
    """The last ``lines`` lines of the log as text (at most ``max_bytes`` of it)."""
    start = tail_start(path, lines, max_bytes=max_bytes)
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read(max_bytes).decode("utf-8", errors="replace")


def header(shown: Shown, lines: int) -> str:
    """The line printed above a tail, saying what was left out and how to see it."""
    what = (f"{shown.skipped_lines:,} earlier line(s)" if shown.skipped_lines is not None
            else f"{shown.skipped_bytes:,} earlier byte(s)")
    return (f"[{what} not shown; this is the last {lines:,} line(s). "
            f"Add {FULL_FLAG} to see the whole log.]\n")


def show(path: str | os.PathLike[str], out: IO[str], lines: int = DEFAULT_LINES,
         full: bool = False, count_skipped: bool = True) -> Shown:
    """Print the log to ``out``: all of it when ``full``, else its last ``lines`` lines.

    When lines are left out, a header line says how many (``count_skipped`` reads the skipped
    part once, in chunks, to count them; otherwise the header gives bytes) and how to see all.
    """
    start = 0 if full else tail_start(path, lines)
    skipped_lines = count_lines(path, start) if start and count_skipped else None
    shown = Shown(start, start, skipped_lines, start)
    if start:
        out.write(header(shown, lines))
    end = stream(path, out, start)
    return Shown(start, end, skipped_lines, start)


def follow(path: str | os.PathLike[str], start: int, stop: Callable[[], bool],
           poll_s: float = 1.0, max_poll_s: float = 10.0, chunk_bytes: int = CHUNK_BYTES,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """Yield the text appended to the log after byte ``start``, until ``stop()`` says so.

    Polls with a growing interval (``poll_s`` up to ``max_poll_s``) while nothing is new, and
    asks ``stop()`` only then; after it returns True, whatever was appended meanwhile is still
    yielded. A log that shrinks (the task was requeued and its log rewritten) is followed again
    from its start, after a note saying so. A missing log is waited for.
    """
    reader, delay = _Appended(Path(path), start, chunk_bytes), poll_s
    while True:
        got = False
        for text in reader.new_text():
            got = True
            yield text
        if got:
            delay = poll_s
            continue
        if stop():
            yield from reader.new_text()
            rest = reader.flush()
            if rest:
                yield rest
            return
        sleep(delay)
        delay = min(delay * 1.5, max_poll_s)


class _Appended:
    """Reads what a log gained since the last call, decoding across chunk boundaries."""

    def __init__(self, path: Path, pos: int, chunk_bytes: int) -> None:
        self.path, self.pos, self.chunk_bytes = path, pos, chunk_bytes
        self.decoder = _decoder()

    def new_text(self) -> Iterator[str]:
        """Text after ``self.pos`` (advanced as it goes); nothing while the log is absent."""
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return
        with fh:
            if os.fstat(fh.fileno()).st_size < self.pos:
                self.decoder.reset()
                self.pos = 0
                yield (f"[{self.path} was rewritten (the task restarted?); "
                       "following it from its start]\n")
            for data in _chunks(fh, self.pos, None, self.chunk_bytes):
                self.pos += len(data)
                text = self.decoder.decode(data)
                if text:
                    yield text

    def flush(self) -> str:
        """A final partial character, as U+FFFD."""
        return self.decoder.decode(b"", final=True)


# -- a pack's log: one section per artifact -----------------------------------------------------
@dataclass(frozen=True)
class Section:
    """Bytes ``start``..``end`` of a pack's log that belong to one artifact, ``lines`` long."""

    start: int
    end: int
    lines: int


def sections(path: str | os.PathLike[str], relpath: str) -> list[Section]:
    """The sections of ``relpath`` in a pack's log, oldest first (one per attempt: a requeued
    pack starts again with a banner and skips what it built). Reads the log once, line by
    line in pieces of at most ``CHUNK_BYTES`` (a longer line is read in pieces)."""
    found: list[Section] = []
    start, lines, pos, at_line_start = -1, 0, 0, True
    with open(path, "rb") as fh:
        while piece := fh.readline(CHUNK_BYTES):
            owner = section_of(piece) if at_line_start else None
            if owner is not None:
                if start >= 0:
                    found.append(Section(start, pos, lines))
                start, lines = (pos, 0) if owner == relpath else (-1, 0)
            pos += len(piece)
            at_line_start = piece.endswith(b"\n")
            lines += at_line_start
    if start >= 0:
        found.append(Section(start, pos, lines + (not at_line_start)))
    return found


def _skip_lines(fh: BinaryIO, start: int, end: int, n: int, chunk_bytes: int) -> int:
    """The offset after the first ``n`` lines of bytes ``start``..``end``."""
    pos = start
    for data in _chunks(fh, start, end, chunk_bytes):
        idx = -1
        while n and (idx := data.find(b"\n", idx + 1)) >= 0:
            n -= 1
        if not n:
            return pos + idx + 1
        pos += len(data)
    return end


def show_sections(path: str | os.PathLike[str], out: IO[str], found: list[Section],
                  lines: int = DEFAULT_LINES, full: bool = False,
                  chunk_bytes: int = CHUNK_BYTES) -> Shown:
    """Print an artifact's sections of a pack's log: all of them when ``full``, else their
    last ``lines`` lines, under a header saying how many were left out."""
    total = sum(s.lines for s in found)
    skip = 0 if full else max(0, total - lines)
    if skip:
        out.write(f"[{skip:,} earlier line(s) of this artifact not shown; this is the last "
                  f"{lines:,} line(s). Add {FULL_FLAG} to see all of it.]\n")
    first, end = found[0].start if found else 0, 0
    with open(path, "rb") as fh:
        for sec in found:
            start = sec.start
            if skip >= sec.lines:
                skip -= sec.lines
                continue
            if skip:
                start, skip = _skip_lines(fh, sec.start, sec.end, skip, chunk_bytes), 0
            decoder = _decoder()
            for data in _chunks(fh, start, sec.end, chunk_bytes):
                out.write(decoder.decode(data))
            out.write(decoder.decode(b"", final=True))
            end = sec.end
    return Shown(first, end, None, 0)


def section_bytes(path: str | os.PathLike[str], relpath: str, limit: int,
                  from_end: bool = True) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of ``relpath``'s sections of a pack's log (the last ones, or
    the first), and whether some were left out; reads no more than it returns."""
    found = sections(path, relpath)
    order = reversed(found) if from_end else iter(found)
    parts: list[bytes] = []
    left = limit
    with open(path, "rb") as fh:
        for sec in order:
            n = min(left, sec.end - sec.start)
            fh.seek(sec.end - n if from_end else sec.start)
            parts.append(fh.read(n))
            left -= n
            if not left:
                break
    if from_end:
        parts.reverse()
    return b"".join(parts), sum(s.end - s.start for s in found) > limit


EARLY_TAIL_BYTES = 8192  # the early-failure line is among a log's last lines


def early_failure(path: str | os.PathLike[str]) -> str | None:
    """The reason a task gave for failing before it built anything, or for a failure it could
    not record in its status file (the text after ``EARLY_FAILURE`` or ``UNRECORDED_FAILURE``
    on the last line that has one, within the log's last 8 KiB), or None."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - EARLY_TAIL_BYTES))
            data = fh.read(EARLY_TAIL_BYTES)
    except OSError:
        return None
    found = max(((data.rfind(m), m) for m in _MARKERS), key=lambda hit: hit[0])
    at, marker = found
    if at < 0:
        return None
    line = data[at + len(marker):].split(b"\n", 1)[0]
    return line.decode("utf-8", "replace").strip() or None


_MARKERS = (EARLY_FAILURE.encode("utf-8"), UNRECORDED_FAILURE.encode("utf-8"))
