"""Shared helpers of the benchmark scripts: timed subprocesses, medians, tables, machine info.

Not part of the package and not run by the tests; each ``bench_*.py`` imports it from its own
directory (``python bench/bench_planning.py`` puts ``bench/`` first on ``sys.path``).
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"          # scratch space (gitignored)
PEERS = BENCH / ".peers"        # peer tools' venv (gitignored), made by setup_peers.sh
PEERS_BIN = PEERS / "bin"


@dataclass(frozen=True)
class Measured:
    """One finished child process: wall time, its own peak RSS, exit status."""

    wall_s: float
    maxrss_mb: float
    returncode: int
    timed_out: bool = False
    stderr_tail: str = ""
    cpu_s: float = float("nan")  # user + system CPU of the child (and its children)


def run_measured(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                 cwd: str | Path | None = None, timeout_s: float | None = None,
                 stdout: int | None = subprocess.DEVNULL) -> Measured:
    """Run ``argv`` in a fresh process; peak RSS from ``wait4`` (this child and its children)."""
    full_env = {**os.environ, **(env or {})}
    err_path = WORK / f".stderr.{os.getpid()}"
    WORK.mkdir(parents=True, exist_ok=True)
    with open(err_path, "w+b") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=full_env, cwd=cwd, stdout=stdout, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        timed_out = False
        deadline = None if timeout_s is None else t0 + timeout_s
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                timed_out = True
                os.killpg(proc.pid, 9)
                pid, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-2000:]
    err_path.unlink(missing_ok=True)
    return Measured(wall, rusage.ru_maxrss / 1024, proc.returncode, timed_out, tail,
                    rusage.ru_utime + rusage.ru_stime)


def load() -> str:
    """The 1-minute load average now (other sessions share these cores: state it by figures)."""
    return f"{os.getloadavg()[0]:.1f}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (pastes into bench/README.md as is)."""
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    out = [f"### {title}", "", line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out) + "\n"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "–"
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        if value >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine() -> str:
    """One line: date, CPUs, memory, Python, Slurm (if installed)."""
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    slurm = "none"
    for probe in (["sbatch", "--version"], ["slurmd", "-V"], ["/usr/sbin/slurmd", "-V"]):
        if shutil.which(probe[0]):
            found = subprocess.run(probe, capture_output=True, text=True).stdout.strip()
            if found:
                slurm = found
                break
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {os.cpu_count()} CPUs; {mem_gb:.0f} GiB RAM; "
            f"Python {platform.python_version()} ({sys.executable}); {slurm}; "
            f"{platform.platform()}")


PINNED = ("snakemake", "snakemake-executor-plugin-slurm", "submitit")  # see setup_peers.sh


def peer_versions() -> str:
    """The peer tools' versions in bench/.peers (pinned by setup_peers.sh), for the output."""
    py = PEERS_BIN / "python"
    if not py.exists():
        return "peers not installed (run `bash bench/setup_peers.sh`)"
    code = ("import sys\nfrom importlib.metadata import version\n"
            "print(', '.join(f'{n} {version(n)}' for n in sys.argv[1:]))")
    done = subprocess.run([str(py), "-c", code, *PINNED], capture_output=True, text=True)
    return done.stdout.strip() or f"peer versions unreadable: {done.stderr.strip()[-200:]}"


def peer(tool: str) -> str:
    """The path of a peer tool in bench/.peers, or exit telling how to install it."""
    path = PEERS_BIN / tool
    if not path.exists():
        sys.exit(f"{path} is missing: run `bash bench/setup_peers.sh` first")
    return str(path)
