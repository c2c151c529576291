"""The worker's start, per task, beside the interpreter floor (issue 14, part 2).

Each run is one fresh process, interleaved round by round so that load drifts hit every
contender alike; wall time and the child's own CPU time (user + sys, from ``wait4``) are
reported as medians:

* ``python -c pass``                   the interpreter floor a bare Python array pays per task
* ``python -I -S -c pass``             the same interpreter without ``site``
* ``python -m experiments.worker``     the worker as tasks started it before (``site`` and all)
* ``python -I -S -c <bootstrap>``      the worker as the batch script starts it now

Both worker forms build a real artifact (one ``run_command('true')`` step, done marker, status
file), each run a new one, from a spec written by the package itself.

    python bench/bench_worker_start.py            # --runs 40
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, WORK, machine, median, table

sys.path.insert(0, str(REPO))
from experiments.worker import specs  # noqa: E402
from experiments.worker.bootstrap import worker_argv  # noqa: E402


def _spec(root: Path, n: int) -> str:
    spec = root / "spec"
    tasks = [{"id": f"x{i}", "relpath": f"Probe/i={i}-x{i}", "class": "Probe", "params": {},
              "deps": [], "steps": [{"kind": "run_command", "command": "true"}]}
             for i in range(n)]
    specs.write_spec(str(spec), {"project": "bench", "stage": "s", "job_name": "j",
                                 "artifact_path": str(root / "artifacts"),
                                 "code_path": str(root)}, tasks)
    return str(spec)


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv[:4]} failed")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    root = WORK / "worker_start"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    spec = _spec(root, 2 * args.runs)
    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the old form finds this checkout this way
    cases = {
        "python -c pass (floor)": lambda i: [py, "-c", "pass"],
        "python -I -S -c pass": lambda i: [py, "-I", "-S", "-c", "pass"],
        "worker, before: python -m experiments.worker": lambda i: [
            py, "-m", "experiments.worker", spec, str(2 * i)],
        "worker, now: python -I -S -c <bootstrap>": lambda i: worker_argv(
            py, spec, 2 * i + 1, package_parent=str(REPO)),
    }
    got: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
    for i in range(args.runs):
        for name, argv in cases.items():
            got[name].append(_run(argv(i), env))
    floor_wall = median([w for w, _ in got["python -c pass (floor)"]])
    floor_cpu = median([c for _, c in got["python -c pass (floor)"]])
    rows = []
    for name, runs in got.items():
        wall, cpu = median([w for w, _ in runs]), median([c for _, c in runs])
        rows.append([name, wall * 1000, cpu * 1000, wall / floor_wall, cpu / floor_cpu])
    print(f"Machine: {machine()}; load {os.getloadavg()[0]:.1f}\n")
    print(table(f"Worker start per task (median of {args.runs}, interleaved; ms)",
                ["process", "wall ms", "cpu ms", "x floor (wall)", "x floor (cpu)"], rows))


if __name__ == "__main__":
    main()
