"""Packing (issue 14): N trivial artifacts launched until built, packed, unpacked and bare.

(d) end to end  `launch --set pack=P` of N trivial artifacts (`run_command('true')`) until all
                are built (done markers polled every 0.5 s), beside the bare
                `sbatch --array=0-(N-1) --wrap true` until it left the queue, and the same
                launch unpacked (only in the first repetition by default: it is slow);
                interleaved in each repetition, so every figure comes from the same run.
                "x bare (per run)" is the median of each repetition's ratio to the bare array
                run just before it (the same load). Also the sbatch calls of each, and the
                tasks Slurm requeued or held after failed batch launches (a loaded slurmd).
                Goal: packed ≤ 0.5x bare, with no more sbatch calls than unpacked.

Uses bench_slurm.py's cluster, wrappers and contenders. By default it starts a private cluster
of its own; its directory and ports come from the same variables as the test cluster script
(SLURM_TEST_DIR, SLURM_TEST_CTLD_PORT, …) so that several checkouts can each run one.

    python bench/bench_pack.py                # N=1000, pack 50, 3 repetitions (~10 minutes)
    python bench/bench_pack.py --quick        # N=200, one repetition
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import WORK, machine, median, table
from bench_slurm import (
    HELD,
    PRIVATE_CLUSTER,
    REQUEUED,
    Cluster,
    Ours,
    bare,
    make_wrappers,
    start_cluster,
    wait_until,
)


def load() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def ours_until_built(cluster: Cluster, ours: Ours, n: int, extra: list[str],
                     timeout_s: float, what: str) -> tuple[float, int]:
    """Seconds from `launch` until every artifact is built, and its sbatch calls."""
    t0 = time.perf_counter()
    env = ours.fresh(n)
    run = ours.verb(env, "launch", *extra)
    wait_until(lambda: ours.built(env) >= n, timeout_s, what, cluster)
    wall = time.perf_counter() - t0
    wait_until(lambda: not cluster.queue(), 120, f"{what}: jobs leaving the queue")
    return wall, run.calls["sbatch"]


def bench_pack(cluster: Cluster, wrap: Path, root: Path, args: argparse.Namespace) -> str:
    n, ours = args.n, Ours(cluster, wrap, root)
    packed = f"ours, pack={args.pack}"
    times: dict[str, list[float]] = {"bare": [], packed: [], "ours, unpacked": []}
    calls: dict[str, int] = {}
    loads: list[str] = []
    cluster.cancel_all()
    for rep in range(args.reps):
        loads.append(load())
        t0 = time.perf_counter()
        calls["bare"] = bare(cluster, wrap, n, cluster.max_array).calls["sbatch"]
        wait_until(lambda: not cluster.queue(), args.timeout, "bare", cluster)
        times["bare"].append(time.perf_counter() - t0)
        for name, extra in ((packed, ["--set", f"pack={args.pack}"]), ("ours, unpacked", [])):
            if name == "ours, unpacked" and rep >= args.unpacked_reps:
                continue
            wall, calls[name] = ours_until_built(cluster, ours, n, extra, args.timeout, name)
            times[name].append(wall)
        print(f"(d) N={n} rep {rep + 1} (load {loads[-1]}): " + ", ".join(
            f"{k} {v[-1]:.1f} s" for k, v in times.items() if len(v) == rep + 1),
            file=sys.stderr, flush=True)
    floor = median(times["bare"])
    rows = []
    for name, ts in times.items():
        if not ts:
            continue
        # each repetition's own ratio to the bare array run just before it (same load)
        ratio = median([t / b for t, b in zip(ts, times["bare"], strict=False)])
        rows.append([name, median(ts), n / median(ts), median(ts) / floor, ratio,
                     calls[name], ("yes" if ratio <= 0.5 else "NO") if name == packed else "–",
                     " ".join(f"{t:.1f}" for t in ts), REQUEUED[name], HELD[name]])
    return table(f"(d) {n} trivial artifacts, launch until all built (median of {args.reps}; "
                 f"poll 0.5 s; load averages at each repetition's start: {'; '.join(loads)})",
                 ["contender", "wall s", "artifacts/s", "x bare (medians)",
                  "x bare (per run)", "sbatch calls", "≤ 0.5x bare", "runs s",
                  "requeued by Slurm", "held, released"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cluster", choices=["private", "env"], default="private",
                    help="start a private bench cluster (default) or use $SLURM_CONF")
    ap.add_argument("--allow-scancel-me", action="store_true",
                    help="with --cluster env: allow `scancel --me` there")
    ap.add_argument("--stop-cluster", action="store_true",
                    help="stop the private cluster at the end")
    ap.add_argument("--partition", default="cpu")
    ap.add_argument("--max-array-size", type=int, default=1001)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--pack", type=int, default=50)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--unpacked-reps", type=int, default=1,
                    help="repetitions that also launch unpacked (slow: one task per artifact)")
    ap.add_argument("--quick", action="store_true", help="--n 200 --reps 1")
    args = ap.parse_args()
    if args.quick:
        args.n, args.reps = 200, 1
    if args.cluster == "env" and not args.allow_scancel_me:
        sys.exit("--cluster env runs `scancel --me` on that cluster; add --allow-scancel-me if "
                 "nobody else uses it")
    root = WORK / "pack"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    cluster = start_cluster(args)
    wrap = make_wrappers(cluster)
    print(f"Machine: {machine()}")
    print(f"Cluster: {cluster.env['SLURM_CONF']} ({'private' if cluster.private else 'env'}), "
          f"partition {cluster.partition}, MaxArraySize {cluster.max_array}\n", flush=True)
    try:
        print(bench_pack(cluster, wrap, root, args), flush=True)
        print(f"Load average at the end: {load()}")
    finally:
        cluster.cancel_all()
        if args.stop_cluster and cluster.private:
            env = {**PRIVATE_CLUSTER, **os.environ}
            subprocess.run(["bash", str(Path(__file__).resolve().parent.parent / "scripts"
                                        / "slurm-test-cluster.sh"), "stop"], env=env)


if __name__ == "__main__":
    main()
