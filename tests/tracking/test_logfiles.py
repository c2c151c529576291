"""experiments.tracking.logfiles: streaming, tailing and following logs, never read whole."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from experiments.tracking import logfiles as logs


def _log(tmp_path: Path, n: int, newline_at_end: bool = True) -> Path:
    path = tmp_path / "task.log"
    text = "\n".join(f"line {i} é" for i in range(n))
    path.write_text(text + ("\n" if newline_at_end else ""), encoding="utf-8")
    return path


def test_stream_copies_everything_and_keeps_split_characters(tmp_path: Path) -> None:
    path = _log(tmp_path, 50)
    out = io.StringIO()
    end = logs.stream(path, out, chunk_bytes=7)  # "é" is two bytes: some chunks split it
    assert out.getvalue() == path.read_text(encoding="utf-8")
    assert end == path.stat().st_size
    part = io.StringIO()
    assert logs.stream(path, part, start=7, end=14, chunk_bytes=3) == 14
    assert part.getvalue() == path.read_bytes()[7:14].decode()


def test_non_utf8_bytes_are_replaced(tmp_path: Path) -> None:
    path = tmp_path / "bin.log"
    path.write_bytes(b"ok \xff\xfe end\n\xc3")  # bad bytes, then a character cut at EOF
    out = io.StringIO()
    logs.stream(path, out, chunk_bytes=2)
    assert out.getvalue() == "ok \ufffd\ufffd end\n\ufffd"
    assert logs.tail(path, 5) == "ok \ufffd\ufffd end\n\ufffd"


@pytest.mark.parametrize("newline_at_end", [True, False])
@pytest.mark.parametrize("block", [4, 16, 1 << 16])
def test_tail_reads_the_last_lines_backwards(tmp_path: Path, newline_at_end: bool,
                                             block: int) -> None:
    path = _log(tmp_path, 1000, newline_at_end)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for n in (1, 10, 999):
        start = logs.tail_start(path, n, block_bytes=block)
        assert path.read_bytes()[start:].decode() == "".join(lines[-n:])
    assert logs.tail_start(path, 1000, block_bytes=block) == 0
    assert logs.tail_start(path, 5000, block_bytes=block) == 0
    assert logs.tail_start(path, 0) == path.stat().st_size
    assert logs.tail(path, 3) == "".join(lines[-3:])


def test_tail_of_empty_and_one_line_logs(tmp_path: Path) -> None:
    empty = tmp_path / "e.log"
    empty.write_bytes(b"")
    assert logs.tail(empty, 10) == ""
    one = tmp_path / "o.log"
    one.write_bytes(b"\n")
    assert logs.tail(one, 1) == "\n"


def test_tail_cuts_an_endless_line(tmp_path: Path) -> None:
    path = tmp_path / "long.log"
    path.write_bytes(b"a" * 10_000 + b"\nlast\n")
    assert logs.tail_start(path, 2, block_bytes=64, max_bytes=100) == path.stat().st_size - 100
    assert logs.tail(path, 2, max_bytes=100) == "a" * 94 + "\nlast\n"


def test_show_prints_a_short_log_whole(tmp_path: Path) -> None:
    path = _log(tmp_path, 200)
    out = io.StringIO()
    shown = logs.show(path, out)
    assert out.getvalue() == path.read_text(encoding="utf-8")
    assert (shown.start, shown.end, shown.skipped_lines) == (0, path.stat().st_size, None)


def test_show_prints_the_tail_of_a_long_log_under_a_header(tmp_path: Path) -> None:
    path = _log(tmp_path, 1000)
    out = io.StringIO()
    shown = logs.show(path, out)
    head, body = out.getvalue().split("\n", 1)
    assert head == ("[800 earlier line(s) not shown; this is the last 200 line(s). "
                    "Add --full to see the whole log.]")
    assert body == "".join(path.read_text(encoding="utf-8").splitlines(True)[-200:])
    assert shown.skipped_lines == 800 and shown.end == path.stat().st_size
    out = io.StringIO()
    ten = logs.show(path, out, lines=10, count_skipped=False)
    assert ten.skipped_lines is None and ten.skipped_bytes == ten.start > shown.start
    assert out.getvalue().startswith(f"[{ten.skipped_bytes:,} earlier byte(s) not shown; "
                                     "this is the last 10 line(s). Add --full")
    out = io.StringIO()
    logs.show(path, out, full=True)
    assert out.getvalue() == path.read_text(encoding="utf-8")


def test_follow_yields_appended_text_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "grow.log"
    appends = [b"", b"one\n", b"", b"t\xc3", b"\xa9 two\n", b"", b"", b"last\n"]
    stops: list[int] = []
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the task writes while we wait
        sleeps.append(seconds)
        if appends:
            with open(path, "ab") as fh:
                fh.write(appends.pop(0))

    def stop() -> bool:
        stops.append(1)
        return not appends

    text = "".join(logs.follow(path, 0, stop, poll_s=1.0, max_poll_s=2.0, sleep=sleep))
    assert text == "one\nt\u00e9 two\nlast\n"
    assert max(sleeps) <= 2.0 and sleeps[0] == 1.0 and 1.5 in sleeps


def test_follow_starts_after_what_was_shown_and_notices_a_rewrite(tmp_path: Path) -> None:
    path = _log(tmp_path, 3)
    shown = logs.show(path, io.StringIO())
    events = iter([lambda: path.write_bytes(b"new\n"), lambda: None])

    def sleep(_: float) -> None:
        next(events)()

    chunks = list(logs.follow(path, shown.end, lambda: path.read_bytes() == b"new\n",
                              sleep=sleep))
    assert chunks[0].startswith(f"[{path} was rewritten")
    assert "".join(chunks[1:]) == "new\n"
