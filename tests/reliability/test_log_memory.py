"""`cat` must not read whole logs into memory (issue 11, item 7): peak RSS stays bounded.

A 200 MB log of real lines is shown whole, tailed and followed by a child process; its peak RSS
(from wait4, this child alone) is compared with a child that only imports the module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOG_MB = 200
BOUND_MB = 60

CHILD = """
import os, sys
from experiments.tracking import logfiles as logs
path = sys.argv[1]
if sys.argv[2] == "work":
    with open(os.devnull, "w", encoding="utf-8") as out:
        logs.show(path, out, full=True)
        shown = logs.show(path, out)
        assert shown.skipped_lines and shown.skipped_lines > 1_000_000, shown
        assert logs.tail(path, 200).count("\\n") == 200
        for text in logs.follow(path, 0, lambda: True):
            out.write(text)
"""


def _write_log(path: Path, megabytes: int) -> None:
    """Real lines (numbered, with a few non-UTF-8 bytes), not a sparse file."""
    with open(path, "wb") as fh:
        n = 0
        while fh.tell() < megabytes << 20:
            block = b"".join(b"step %9d loss=0.%06d lr=3e-4 \xff tokens/s=123456 ok\n" % (n + i, i)
                             for i in range(10_000))
            fh.write(block)
            n += 10_000


def _peak_rss_mb(path: Path, mode: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), mode], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    return usage.ru_maxrss / 1024  # KiB on Linux


def test_show_tail_and_follow_of_a_200_mb_log_stay_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    _write_log(path, LOG_MB)
    try:
        baseline = _peak_rss_mb(path, "import-only")
        used = _peak_rss_mb(path, "work")
    finally:
        path.unlink()
    assert used - baseline < BOUND_MB, f"peak RSS {used:.0f} MB vs baseline {baseline:.0f} MB"
