"""The pooled worker's replies: lines that arrive together are all read, none waited for."""

from __future__ import annotations

import os
import time

from experiments.backends.local.pool import PooledWorker


def _reader(data: bytes) -> tuple[PooledWorker, object]:
    rfd, wfd = os.pipe()
    os.write(wfd, data)
    os.close(wfd)
    worker = PooledWorker.__new__(PooledWorker)  # only the line reader is exercised
    worker._buffer = b""
    return worker, os.fdopen(rfd, "rb")


def test_two_lines_in_one_write_are_both_read_at_once() -> None:
    worker, stdout = _reader(b"pgid 123\n0\n")
    deadline = time.monotonic() + 2.0
    assert worker._line(stdout, deadline) == b"pgid 123\n"  # type: ignore[arg-type]
    assert worker._line(stdout, deadline) == b"0\n"  # type: ignore[arg-type]  # not a timeout


def test_end_of_file_is_an_empty_line() -> None:
    worker, stdout = _reader(b"")
    assert worker._line(stdout, time.monotonic() + 2.0) == b""  # type: ignore[arg-type]
