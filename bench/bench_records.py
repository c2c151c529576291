"""The tracking side of issue 26 in one process, on FakeBackend: what launch's record and spec
writing and `status` of N ended tasks cost, without a scheduler in the way.

A project of N trivial artifacts in two stages of N/2 (as bench/bench_status.py's) is launched
through FakeBackend (arrays of 1,000: what a 1M launch submits on a cluster with MaxArraySize
1001); every task is then cancelled without writing anything (the "all ended" case: no marker,
no status file), one `status` records the ends, and `status` is timed again from a fresh
session (a fresh store: it reads the records from disk). The launch figure is the part of a
real `launch` that is ours (planning included); bench/bench_planning.py `--launch` times the
whole command against a real cluster.

    python bench/bench_records.py --n 100000 --reps 3            # ~2 min
    python bench/bench_records.py --n 1000000 --reps 1 --no-status
    python bench/bench_records.py --n 100000 --profile status    # cProfile, top 30

By hand only, never in CI.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from _common import REPO, WORK, machine, median, table

sys.path.insert(0, str(REPO))

from experiments import Artifact, ArtifactSet, Executor, Task  # noqa: E402
from experiments.backends.fake import FakeBackend  # noqa: E402
from experiments.session import Session  # noqa: E402
from experiments.states import JobState  # noqa: E402


@dataclass(frozen=True)
class Old(Artifact):
    """Half of the grid."""

    i: int

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass(frozen=True)
class New(Artifact):
    """The other half."""

    i: int

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


class FakeExecutor(Executor):
    default_backend = "fake"


def executor(root: Path, n: int) -> FakeExecutor:
    ex = FakeExecutor(project="bench-records", artifact_path=str(root / "artifacts"),
                      code_path=str(root))
    half = list(range(n // 2))
    ex.stage("old", ArtifactSet.from_product(cls=Old, params={"i": half}))
    ex.stage("new", ArtifactSet.from_product(cls=New, params={"i": half}))
    return ex


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn: Any, profile: bool) -> tuple[float, float]:
    """Wall and CPU seconds of ``fn()`` (with ``profile``: its cProfile, top 30, on stderr)."""
    prof = cProfile.Profile() if profile else None
    t0, c0 = time.perf_counter(), cpu()
    if prof:
        prof.enable()
    fn()
    if prof:
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    return time.perf_counter() - t0, cpu() - c0


def sizes(home: Path) -> tuple[float, float]:
    """MB of records (jobs files) and of specs under ``home``."""
    records = specs = 0
    for p in home.rglob("*"):
        if p.is_file():
            if "/specs/" in str(p):
                specs += p.stat().st_size
            elif p.name.startswith("jobs."):
                records += p.stat().st_size
    return records / 2**20, specs / 2**20


def status_once(ex: FakeExecutor, fake: FakeBackend) -> None:
    """One `status` from a fresh session (its store reads the records from disk)."""
    from experiments.verbs.inspect import status

    status(Session.open(ex, backend="fake", instances={"fake": fake}))


def run(n: int, reps: int, status: bool, profile: str) -> list[list[object]]:
    from experiments import verbs

    rows: list[list[object]] = []
    launches, stats = [], []
    ended_mb = 0.0
    for rep in range(reps):
        root = Path(tempfile.mkdtemp(dir=WORK, prefix="records."))
        os.environ["EXPERIMENTS_HOME"] = str(root / "home")
        fake = FakeBackend(max_array_size=1000)
        ex = executor(root, n)
        s = Session.open(ex, backend="fake", instances={"fake": fake})
        launches.append(timed(partial(verbs.launch, s), profile == "launch" and rep == 0))
        mb = sizes(root / "home")
        if status:
            for job_id in fake.jobs:
                fake.end(job_id, raw="CANCELLED", state=JobState.CANCELLED)
            status_once(ex, fake)
            ended_mb = sizes(root / "home")[0]
            for _ in range(3 if rep == 0 else 1):
                stats.append(timed(partial(status_once, ex, fake),
                                   profile == "status" and rep == 0 and not stats))
        print(f"rep {rep + 1}: launch {launches[-1][0]:.2f} s, status "
              f"{stats[-1][0] if stats else 0:.2f} s; load {os.getloadavg()[0]:.1f}",
              file=sys.stderr, flush=True)
        shutil.rmtree(root)
    rows.append([n, "launch (fake backend)", median([w for w, _ in launches]),
                 median([c for _, c in launches]), f"{mb[0]:.1f} MB records, "
                 f"{mb[1]:.1f} MB specs"])
    if stats:
        rows.append([n, "status, all ended", median([w for w, _ in stats]),
                     median([c for _, c in stats]),
                     f"{len(stats)} runs; {ended_mb:.1f} MB records with the ends"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-status", dest="status", action="store_false")
    ap.add_argument("--profile", choices=["", "launch", "status"], default="")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {machine()}\n", flush=True)
    rows = run(args.n, args.reps, args.status, args.profile)
    print(table(f"tracking of {args.n:,} tasks in one process (median; load "
                f"{os.getloadavg()[0]:.1f} at the end)",
                ["tasks", "what", "wall s", "cpu s", "note"], rows))


if __name__ == "__main__":
    main()
