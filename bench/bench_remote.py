"""Issue 28: ``--on`` from a laptop account, against ``rsync`` of the same tree plus ``ssh true``.

As root, on the Slurm cluster of ``$SLURM_CONF`` (its ``cpu`` partition is set DOWN while the
bench runs, so the 10,000 artifacts queue and nothing runs; it is set UP again and the jobs
cancelled at the end): a private sshd on a loopback port (tests/_sshd.py), the laptop as the
account ``expuser1`` with its own ~/.ssh/config alias, the cluster as ``expuser2`` (the same
set-up as tests/remote). The experiment sits in a code tree of a realistic size (``--files``
Python-like files of ``--kb`` in total, a git checkout).

Measured, each a fresh laptop process:
  * ``launch --on`` of N artifacts on first contact (the cluster holds nothing yet);
  * ``launch --on`` again after a one-file edit (nothing new to launch: the code is shipped);
  * ``status --on`` with N tracked tasks;
  * ``rsync -az`` of the same tree into an empty folder, then ``ssh host true``, and again
    after a one-file edit: what copying the code by hand before a login costs.
Round trips and bytes are the laptop's own figures (``<home>/remotes/<name>.log``: payload on
the SSH channel each way); rsync's are its ``--stats`` totals (also payload on its channel).
Every SSH call goes through the same ControlMaster, so the one login is counted apart.
PYTHONDONTWRITEBYTECODE is unset (a user's machine caches bytecode).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, load, machine, table

sys.path.insert(0, str(REPO))
from tests.support.remote_site import (  # noqa: E402
    CLUSTER,
    LAPTOP,
    Site,
    clean_up,
    commit_all,
    laptop_ssh,
    make_site,
    write_as,
)
from tests.support.slurm_cluster import SlurmCluster, copy_user_packages, ensure_user  # noqa: E402
from tests.support.sshd import start  # noqa: E402

EXPERIMENT = '''
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Point(Artifact):
    i: int

    def get_requirements(self):
        return {"partition": "cpu", "time": "0:05:00", "cpus": 1}

    def construct(self, builder: Task):
        builder.run_command("python src/pkg000/mod000.py")

executor = SlurmExecutor(project="benchremote")
executor.stage("grid", ArtifactSet.from_product(cls=Point, params={"i": list(range(N))}))

if __name__ == "__main__":
    executor.auto_cli()
'''
WORDS = ("self", "return", "def", "for", "in", "if", "else", "import", "value", "config",
         "model", "data", "batch", "loss", "step", "path", "None", "True", "len", "range",
         "append", "items", "result", "args", "kwargs", "np", "torch", "yield", "with", "open")


def _tree(code: Path, files: int, kb: int, seed: int = 7) -> None:
    """A Python-like code tree: ``files`` files of ``kb`` kB in total, in 20 packages."""
    rng = random.Random(seed)
    sizes = [rng.lognormvariate(0, 1) for _ in range(files)]
    scale = kb * 1000 / sum(sizes)
    for n, size in enumerate(sizes):
        lines, total = [], 0
        while total < size * scale:
            ident = "".join(rng.choice("abcdefghij") for _ in range(rng.randint(3, 9)))
            line = "    " * rng.randint(0, 3) + " ".join(
                rng.choice(WORDS) for _ in range(rng.randint(2, 9))) + f" {ident}({n})"
            lines.append(line)
            total += len(line) + 1
        write_as(code / "src" / f"pkg{n % 20:03d}" / f"mod{n:03d}.py", "\n".join(lines) + "\n",
                 LAPTOP)


def _figures(site: Site, label: str, res: subprocess.CompletedProcess[str], seconds: float,
             logins: int) -> list[object]:
    """One row from the laptop's own figures of the command just run."""
    assert res.returncode in (0, 3), f"{label}: {res.stdout}\n{res.stderr}"
    stats = site.stats()[-1]
    return [label, stats["round_trips"], 1, f"{stats['sent_bytes']:,}",
            f"{stats['received_bytes']:,}", f"{seconds:.2f}", site.sshd.logins() - logins]


def _rsync(site: Site, label: str, dest: str, logins: int) -> list[object]:
    """One row: rsync of the code tree to ``dest`` plus ``ssh host true``, through the master."""
    ssh = (f"ssh -o ControlMaster=auto -o ControlPath={site.laptop_home}/ssh/%C "
           "-o ControlPersist=60")
    t0 = time.perf_counter()
    res = site.as_laptop("rsync", "-az", "--stats", "--exclude", ".git", "-e", ssh,
                         f"{site.code}/", f"{site.alias}:{dest}/")
    true = site.as_laptop("ssh", "-o", "ControlMaster=auto", "-o",
                          f"ControlPath={site.laptop_home}/ssh/%C", "-o", "ControlPersist=60",
                          site.alias, "true")
    seconds = time.perf_counter() - t0
    assert res.returncode == 0 and true.returncode == 0, res.stderr + true.stderr
    sent = re.search(r"Total bytes sent: ([\d,]+)", res.stdout)
    got = re.search(r"Total bytes received: ([\d,]+)", res.stdout)
    assert sent and got, res.stdout
    return [label, "-", 2, sent.group(1), got.group(1), f"{seconds:.2f}",
            site.sshd.logins() - logins]


def _edit(site: Site, n: int) -> None:
    """Append a line to one file of the tree (a one-file edit)."""
    path = next((site.code / "src").rglob(f"mod{n:03d}.py"))
    write_as(path, path.read_text() + f"# edited {time.time()}\n", LAPTOP)


def _ensure_rsync() -> None:
    """Install rsync with apt-get when missing (the bench only; CI never runs this)."""
    if shutil.which("rsync"):
        return
    subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=900", "install", "-y", "-qq",
                    "rsync"], check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def _on_login_node(site: Site, label: str, verb: str) -> list[object]:
    """The same verb run by the cluster user on the login node, in the newest tree (no SSH):
    what ``--on`` adds is the difference."""
    trees = site.code_root / "benchremote" / "trees"
    tree = max((p for p in trees.iterdir() if not p.name.startswith(".")),
               key=lambda p: p.stat().st_mtime)
    env = json.loads((site.cluster / "env.json").read_text())
    argv = ["setpriv", f"--reuid={CLUSTER}", f"--regid={CLUSTER}", "--init-groups", "--",
            "env", *[f"{k}={v}" for k, v in env.items()], "HOME=/tmp", site.python, "-m",
            "experiments", "--file", str(tree / "exp.py"), "--artifact-path",
            str(site.artifacts), "--code-path", str(tree), verb]
    t0 = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, cwd=tree, timeout=3600)
    seconds = time.perf_counter() - t0
    assert res.returncode in (0, 3), res.stdout + res.stderr
    return [label, "-", 0, "-", "-", f"{seconds:.2f}", "-"]


def _measure(site: Site, n: int) -> list[list[object]]:
    """Every row of the table, in order."""
    rows = []
    logins = site.sshd.logins()
    for label, args in ((f"launch --on, {n:,} artifacts, first contact", ["launch"]),
                        ("launch --on again after a one-file edit", ["launch"]),
                        (f"status --on, {n:,} tracked", ["status"])):
        if "edit" in label:
            _edit(site, 3)
        t0 = time.perf_counter()
        res = site.laptop(*args, "--on", "c", timeout=3600)
        rows.append(_figures(site, label, res, time.perf_counter() - t0, logins))
    rows.append(_on_login_node(site, "launch on the login node itself (nothing new)", "launch"))
    rows.append(_on_login_node(site, f"status on the login node itself, {n:,} tracked",
                               "status"))
    dest = str(site.cluster / "rsync-tree")
    rows.append(_rsync(site, "rsync -az of the tree + ssh true (empty destination)", dest,
                       logins))
    _edit(site, 5)
    rows.append(_rsync(site, "rsync -az + ssh true after a one-file edit", dest, logins))
    return rows


def main() -> None:
    """Set up (sshd, accounts, site, tree), measure, clean up, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="artifacts launched")
    parser.add_argument("--files", type=int, default=400, help="files in the code tree")
    parser.add_argument("--kb", type=int, default=4000, help="size of the code tree in kB")
    args = parser.parse_args()
    conf = os.environ.get("SLURM_CONF")
    if os.geteuid() != 0 or not conf:
        sys.exit("run as root with SLURM_CONF naming the cluster whose cpu partition may be "
                 "set DOWN for the bench")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    _ensure_rsync()
    for user in ("expuser1", "expuser2"):
        problem = ensure_user(user)
        assert problem is None, problem
    slot = int(os.environ.get("EXPERIMENTS_TEST_SLOT") or 0) * 10 + 5
    cluster = SlurmCluster(conf, {"SLURM_CONF": conf}, 1001)
    python, packages = copy_user_packages()
    sshd, daemon = start(Path(f"/tmp/experiments-sshd-bench{slot}"), 17000 + 100 * slot + 55)
    site = make_site(sshd, laptop_ssh(sshd, slot), python, f"{packages}:{REPO}", cluster,
                     slot)
    try:
        write_as(site.code / "exp.py", EXPERIMENT.replace("N))", f"{args.n}))"), LAPTOP)
        _tree(site.code, args.files, args.kb)
        commit_all(site, "bench tree")
        cluster.run("scontrol", "update", "PartitionName=cpu", "State=DOWN")
        rows = _measure(site, args.n)
    finally:
        cluster.run("scontrol", "update", "PartitionName=cpu", "State=UP", check=False)
        clean_up(site)
        daemon.terminate()
        shutil.rmtree(packages, ignore_errors=True)
    print(machine())
    print(f"load at the end: {load()}; code tree: {args.files + 1} files, ~{args.kb:,} kB")
    print(table("--on vs rsync + ssh true (payload bytes on the SSH channel)",
                ["what", "round trips after login", "ssh sessions", "bytes sent",
                 "bytes received", "seconds", "logins"], rows))


if __name__ == "__main__":
    main()
