"""The store under a launch-like workload: does a submission's cost grow with history?

A stage holds N records already (N = 0, 2k, 4k, 8k, 16k; records shaped like launch's: two tasks
with a 16-hex id and a relpath each). A launch records each submission as an ``add`` (the intent)
and an ``update`` (the job id); we time 20 such pairs on a Store that has read the stage once, as
a launch does while planning, and, separately, the whole sequence including that first read.

"before" is the store of another git revision (default ``main``), loaded from ``git show`` as
``experiments._store_before`` so it shares this checkout's helpers; "after" is this checkout's.
Both start from the same history: the "before" file format (a version 1 jobs.json), which the
"after" store migrates once before timing (its own format is a snapshot plus a journal).

    python bench/bench_store.py                     # ~2 minutes
    python bench/bench_store.py --sizes 0,2000 --reps 1 --before-ref main
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from _common import REPO, WORK, machine

sys.path.insert(0, str(REPO))
from experiments.tracking import store as after_store  # noqa: E402

PAIRS = 20


def load_before(ref: str) -> ModuleType:
    """The store module of git revision ``ref``, importable beside this checkout's package."""
    source = subprocess.run(["git", "-C", str(REPO), "show",
                             f"{ref}:experiments/tracking/store.py"],
                            check=True, capture_output=True, text=True).stdout
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "store_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("experiments._store_before", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def record(mod: ModuleType, name: str) -> Any:
    return mod.JobRecord(
        name=name, backend="slurm", stage="train", tier=1,
        tasks=[[f"{abs(hash((name, i))):016x}"[:16], f"Model/lr=0.001,seed={i}-{name[-8:]}"]
               for i in range(2)],
        requirements={"partition": "gpu", "time": "24:00:00", "cpus": 8},
        depends_on=["123456"], spec_dir=f"/home/u/.experiments/projects/p/specs/{name}",
        log_dir="/home/u/.experiments/logs/p/train", host="login1", pid=4242)


def make_history(root: Path, n: int) -> Path:
    """A home whose stage ``train`` holds ``n`` records in a version-1 jobs.json."""
    home = root / f"history-{n}"
    stage = home / "projects" / "p" / "train"
    stage.mkdir(parents=True)
    jobs = [record(after_store, f"p.train.old{i:06d}.t1g0c0").to_dict() for i in range(n)]
    (stage / "jobs.json").write_text(json.dumps({"version": 1, "project": "p", "jobs": jobs}))
    return home


def one_run(mod: ModuleType, history: Path, scratch: Path, migrate: bool) -> tuple[float, float]:
    """Seconds for (20 add+update pairs, open + read all + those pairs) on a copy of history."""
    home = scratch / "home"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(history, home)
    if migrate:
        mod.Store(home, "p").compact("train")
    t0 = time.perf_counter()
    store = mod.Store(home, "p")
    store.all_records()
    t1 = time.perf_counter()
    for i in range(PAIRS):
        name = f"p.train.new{i:04d}.t1g0c{i}"
        store.add(record(mod, name))
        store.update("train", name, job_id=str(900000 + i), state="submitted")
    t2 = time.perf_counter()
    assert len(mod.Store(home, "p").records("train")) >= PAIRS
    return t2 - t1, t2 - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,2000,4000,8000,16000")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--before-ref", default="main")
    args = parser.parse_args()
    before = load_before(args.before_ref)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(machine())
    print(f"\n{PAIRS} add+update pairs per run, median of {args.reps}; before = "
          f"{args.before_ref}, after = this checkout\n")
    print("| history (records) | jobs.json MB | before: pairs s | after: pairs s | "
          "before: read+pairs s | after: read+pairs s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        root = Path(tmp)
        for n in sizes:
            history = make_history(root, n)
            size_mb = (history / "projects/p/train/jobs.json").stat().st_size / 2**20
            cells = []
            for mod, migrate in ((before, False), (after_store, True)):
                runs = [one_run(mod, history, root, migrate) for _ in range(args.reps)]
                cells.append((statistics.median(r[0] for r in runs),
                              statistics.median(r[1] for r in runs)))
            print(f"| {n:,} | {size_mb:.1f} | {cells[0][0]:.3f} | {cells[1][0]:.3f} | "
                  f"{cells[0][1]:.3f} | {cells[1][1]:.3f} |", flush=True)
            shutil.rmtree(history)


if __name__ == "__main__":
    main()
