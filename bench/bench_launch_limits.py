"""A small `launch` on the policed test cluster, as an unprivileged user: wall time and
`sacctmgr` calls, for each tree given, interleaved (issue 26: an ordinary launch asks the
accounting database nothing).

    python bench/bench_launch_limits.py --tree before=/tmp/old-checkout --tree after=. \\
        --conf /tmp/experiments-slurm-policed30/slurm.conf --n 90 --reps 5     # ~1 min

As root (it runs the CLI as `--user` with `runuser` and cancels that user's jobs between
runs), by hand, never in CI. The trees must be readable by the user; the CLI's packages are
copied to a folder the user can read. `sacctmgr` is counted by a wrapper first on PATH.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("click", "rich", "pygments", "markdown_it", "mdurl", "jinja2", "markupsafe",
            "filelock")


def _packages() -> str:
    """A folder of copies of the CLI's packages that every user can read."""
    folder = tempfile.mkdtemp(prefix="bench-limits-pkgs-")
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec and spec.submodule_search_locations, name
        shutil.copytree(spec.submodule_search_locations[0], Path(folder) / name)
    subprocess.run(["chmod", "-R", "a+rX", folder], check=True)
    os.chmod(folder, 0o755)
    return folder


def _experiment() -> str:
    text = (REPO / "tests/policed/test_submit_limit.py").read_text()
    return text.split("EXPERIMENT = '''")[1].split("'''")[0]


def one_launch(args: argparse.Namespace, tree: str, pkgs: str, name: str) -> tuple[float, int]:
    """Wall seconds of one `launch` and the `sacctmgr` calls it made."""
    d = Path(tempfile.mkdtemp(prefix="bench-limits-"))
    os.chmod(d, 0o755)
    (d / "exp.py").write_text(f"PROJECT = {name!r}\nROOT = {str(d)!r}\n" + _experiment())
    (d / "code").mkdir()
    (d / "bin").mkdir()
    wrapper = d / "bin" / "sacctmgr"
    wrapper.write_text(f'#!/bin/bash\necho x >> {d}/sacctmgr.log\n'
                       f'exec {shutil.which("sacctmgr")} "$@"\n')
    wrapper.chmod(0o755)
    subprocess.run(["chown", "-R", args.user, str(d)], check=True)
    env = {"PATH": f"{d}/bin:/usr/bin:/bin", "HOME": f"/home/{args.user}",
           "SLURM_CONF": args.conf, "EXPERIMENTS_HOME": f"{d}/home",
           "PYTHONPATH": f"{pkgs}:{tree}", "TIME": "2", "N": str(args.n)}
    start = time.perf_counter()
    done = subprocess.run([shutil.which("runuser") or "runuser", "-u", args.user, "--",
                           "/usr/bin/python3", "exp.py", "launch"], env=env, cwd=d,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    log = d / "sacctmgr.log"
    calls = len(log.read_text().splitlines()) if log.exists() else 0
    subprocess.run(["scancel", "-u", args.user], env={**os.environ, "SLURM_CONF": args.conf},
                   check=False)
    shutil.rmtree(d, ignore_errors=True)
    return wall, calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", required=True, metavar="LABEL=PATH")
    ap.add_argument("--conf", required=True, help="slurm.conf of the policed test cluster")
    ap.add_argument("--user", default="expuser1")
    ap.add_argument("--n", type=int, default=90, help="artifacts (stay under the limit)")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree)
    pkgs = _packages()
    got: dict[str, list[tuple[float, int]]] = {label: [] for label in trees}
    for rep in range(args.reps):
        for label, tree in trees.items():
            got[label].append(one_launch(args, tree, pkgs, f"lim{rep}{label}"))
            time.sleep(1)
    print("| tree | launch s (median) | runs | sacctmgr calls |\n|---|---|---|---|")
    for label, runs in got.items():
        print(f"| {label} | {statistics.median(w for w, _ in runs):.2f} | "
              f"{' '.join(f'{w:.2f}' for w, _ in runs)} | {[c for _, c in runs]} |")
    print(f"\nload average: {os.getloadavg()}")
    shutil.rmtree(pkgs)


if __name__ == "__main__":
    main()
