"""A laptop and a cluster on this machine, for the ``--on`` tests.

The laptop is the account ``expuser1``: its own ``~/.ssh/config`` (an ``Include`` of
``~/.ssh/experiments-s<slot>.conf``, whose host aliases reach the private sshd of
``tests/_sshd.py``), its own key, its own ``EXPERIMENTS_HOME`` and code folder (a git checkout).
The cluster is the account ``expuser2`` behind that sshd, pointed at this slot's Slurm test
cluster by its ``authorized_keys`` line: ``SLURM_CONF``, ``PYTHONPATH`` (the CLI's packages and
this checkout), ``EXPERIMENTS_HOME``, and a ``PATH`` whose ``python`` is the system Python and
whose ``sbatch`` can be told to hold after submitting (to kill the laptop mid-launch).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.slurm_cluster import SlurmCluster, _slot
from tests.support.sshd import Sshd

REPO = Path(__file__).resolve().parents[2]
LAPTOP, CLUSTER = "expuser1", "expuser2"
SBATCH = """#!/bin/bash
# sbatch, optionally holding after a submission until told to go on (tests kill the laptop then)
echo "$*" >> "$HOLD_DIR/calls"
out=$(/usr/bin/sbatch "$@"); rc=$?
if [ -e "$HOLD_DIR/hold" ]; then
    n=$(ls "$HOLD_DIR" | grep -c '^submitted-')
    : > "$HOLD_DIR/submitted-$n"
    while [ ! -e "$HOLD_DIR/release" ]; do sleep 0.1; done
fi
printf '%s\\n' "$out"
exit $rc
"""


@dataclasses.dataclass(frozen=True)
class Site:
    """One test's laptop and cluster sides."""

    root: Path
    sshd: Sshd
    alias: str  # the laptop's ~/.ssh/config host for the cluster
    code: Path  # the experiment's code folder on the laptop (expuser1's git checkout)
    laptop_home: Path
    cluster: Path  # expuser2's folder: home, code_root, artifacts, runs log, sbatch hold
    python: str
    pythonpath: str
    slurm: SlurmCluster

    @property
    def code_root(self) -> Path:
        return self.cluster / "code"

    @property
    def artifacts(self) -> Path:
        return self.cluster / "out"

    @property
    def hold(self) -> Path:
        return self.cluster / "hold"

    def env(self) -> dict[str, str]:
        home = pwd.getpwnam(LAPTOP).pw_dir
        return {"HOME": home, "USER": LAPTOP, "LOGNAME": LAPTOP, "LANG": "C.UTF-8",
                "PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": self.pythonpath,
                "EXPERIMENTS_HOME": str(self.laptop_home), "EXPERIMENTS_SITE_CONFIG": "",
                "COLUMNS": "200"}

    def argv(self, *args: str, file: str = "exp.py") -> list[str]:
        return ["setpriv", f"--reuid={LAPTOP}", f"--regid={LAPTOP}", "--init-groups", "--",
                self.python, file, *args]

    def laptop(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``python exp.py ARGS`` as the laptop user, in the code folder."""
        return subprocess.run(self.argv(*args), env=self.env(), cwd=self.code, text=True,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def as_laptop(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Any command as the laptop user (git in the code folder, ssh -O exit)."""
        return subprocess.run(["setpriv", f"--reuid={LAPTOP}", f"--regid={LAPTOP}",
                               "--init-groups", "--", *argv], env=self.env(), cwd=self.code,
                              text=True, capture_output=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    def remotes(self, **extra: dict[str, str]) -> None:
        """The laptop's config.json: remote ``c`` (and ``extra`` ones)."""
        c = {"ssh": self.alias, "python": "/usr/bin/python3", "code_root": str(self.code_root),
             "artifact_path": str(self.artifacts)}
        remotes = {"c": c, **{k: {**c, **v} for k, v in extra.items()}}
        write_as(self.laptop_home / "config.json", json.dumps({"remotes": remotes}), LAPTOP)

    def stats(self) -> list[dict[str, object]]:
        """The laptop's per-command figures for remote ``c``, oldest first."""
        log = self.laptop_home / "remotes" / "c.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def objects(self) -> int:
        """How many blobs the cluster stores."""
        return sum(1 for p in (self.code_root / "objects").rglob("*") if p.is_file())


def write_as(path: Path, text: str, user: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    shutil.chown(path, user, user)


def processes(user: str) -> list[str]:
    """``pid state args`` of the user's processes, zombies left out."""
    out = subprocess.run(["ps", "-ww", "-u", user, "-o", "pid=,stat=,args="], capture_output=True,
                         text=True).stdout
    return [line.strip() for line in out.splitlines() if line.split()[1:2] != ["Z"]
            and not line.split()[1].startswith("Z")]


def _in_a_job(pid: str) -> bool:
    """Whether the process runs inside a Slurm job (a task, not a command of ours)."""
    try:
        return b"SLURM_JOB_ID=" in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False  # gone already


def _started(pid: str) -> float:
    """When process ``pid`` started (seconds since the epoch); -inf when it is gone."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, IndexError, ValueError, StopIteration):
        return float("-inf")
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def ours(user: str, since: float = 0.0) -> list[str]:
    """Processes of ``user`` started at ``since`` or later (this test's: the accounts are
    shared with other scenarios) that are neither OpenSSH's (its master, the cluster's
    session) nor a Slurm job's."""
    return [p for p in processes(user)
            if "[mux]" not in p and "sshd:" not in p and not _in_a_job(p.split()[0])
            and _started(p.split()[0]) >= since - 1.0]  # /proc/stat's btime has 1 s steps


def laptop_ssh(sshd: Sshd, slot: int) -> str:
    """expuser1's key and ~/.ssh/config aliases for this slot; returns the main alias."""
    home = Path(pwd.getpwnam(LAPTOP).pw_dir)
    dot = home / ".ssh"
    dot.mkdir(mode=0o700, exist_ok=True)
    shutil.chown(dot, LAPTOP, LAPTOP)
    name = f"experiments-s{slot}"
    for key in (name, f"{name}-other"):
        if not (dot / key).exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(dot / key)],
                           check=True, stdin=subprocess.DEVNULL)
            for f in (dot / key, dot / f"{key}.pub"):
                shutil.chown(f, LAPTOP, LAPTOP)
    alias = f"expcluster-s{slot}"
    write_as(dot / f"{name}.known_hosts", f"[127.0.0.1]:{sshd.port} {sshd.host_key}\n", LAPTOP)
    write_as(dot / f"{name}.unknown_hosts", "", LAPTOP)
    write_as(dot / f"{name}.changed_hosts", f"[127.0.0.1]:{sshd.port} {_public_host_key()}\n",
             LAPTOP)
    blocks = [(alias, name, "known_hosts"), (f"{alias}-unknown", name, "unknown_hosts"),
              (f"{alias}-changed", name, "changed_hosts"),
              (f"{alias}-nokey", f"{name}-other", "known_hosts")]
    text = "".join(f"Host {host}\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {CLUSTER}\n"
                   f"  IdentitiesOnly yes\n  IdentityFile ~/.ssh/{key}\n"
                   f"  UserKnownHostsFile ~/.ssh/{name}.{hosts}\n\n"
                   for host, key, hosts in blocks)
    write_as(dot / f"{name}.conf", text, LAPTOP, 0o600)
    config = dot / "config"
    include = "Include experiments-s*.conf\n"
    current = config.read_text() if config.exists() else ""
    if include not in current:
        write_as(config, include + current, LAPTOP, 0o600)
    return alias


def _public_host_key() -> str:
    """A host key that is not the daemon's (for the changed-key test)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{tmp}/k"],
                       check=True, stdin=subprocess.DEVNULL)
        return Path(f"{tmp}/k.pub").read_text().strip()


@pytest.fixture(scope="session")
def laptop_alias(sshd: Sshd, test_users: tuple[str, ...]) -> str:
    return laptop_ssh(sshd, _slot())


def cluster_side(site_root: Path, sshd: Sshd, pythonpath: str, slurm: SlurmCluster,
                  laptop_key: Path) -> Path:
    """expuser2's folders, config and PATH; the authorized_keys line that points at them."""
    cluster = site_root / "cluster"
    for sub in ("home", "code", "out", "hold", "bin"):
        (cluster / sub).mkdir(parents=True)
    (cluster / "bin" / "python").symlink_to("/usr/bin/python3")
    (cluster / "bin" / "sbatch").write_text(SBATCH)
    os.chmod(cluster / "bin" / "sbatch", 0o755)
    (cluster / "home" / "config.json").write_text(json.dumps({"python": "/usr/bin/python3"}))
    subprocess.run(["chown", "-R", f"{CLUSTER}:{CLUSTER}", str(cluster)], check=True)
    os.chmod(cluster, 0o755)
    env = {"SLURM_CONF": slurm.conf, "PYTHONPATH": pythonpath,
           "EXPERIMENTS_HOME": str(cluster / "home"), "EXPERIMENTS_SITE_CONFIG": "",
           "PATH": f"{cluster / 'bin'}:/usr/local/bin:/usr/bin:/bin",
           "HOLD_DIR": str(cluster / "hold"), "RUNS_LOG": str(cluster / "runs.log")}
    (cluster / "env.json").write_text(json.dumps(env))  # what a login gets (the bench reads it)
    options = ",".join(f'environment="{k}={v}"' for k, v in env.items())
    sshd.authorize([f"{options} {laptop_key.read_text().strip()}"])
    return cluster


def make_site(sshd: Sshd, alias: str, python: str, pythonpath: str, slurm: SlurmCluster,
              slot: int) -> Site:
    """A fresh laptop folder (code, home, config.json) and cluster folder."""
    root = Path(tempfile.mkdtemp(prefix=f"exp-on-s{slot}-"))
    os.chmod(root, 0o755)
    key = Path(pwd.getpwnam(LAPTOP).pw_dir) / ".ssh" / f"experiments-s{slot}.pub"
    cluster = cluster_side(root, sshd, pythonpath, slurm, key)
    laptop = root / "laptop"
    (laptop / "home").mkdir(parents=True)
    (laptop / "code").mkdir()
    subprocess.run(["chown", "-R", f"{LAPTOP}:{LAPTOP}", str(laptop)], check=True)
    made = Site(root, sshd, alias, laptop / "code", laptop / "home", cluster, python,
                pythonpath, slurm)
    made.remotes()
    return made


def clean_up(site: Site) -> None:
    """Close the laptop's master, cancel the cluster user's jobs, remove the folders."""
    site.as_laptop("ssh", "-O", "exit", "-o", f"ControlPath={site.laptop_home}/ssh/%C",
                   site.alias)
    env = {**os.environ, **site.slurm.env}
    ids = subprocess.run(["squeue", "-h", "-u", CLUSTER, "-o", "%i"], capture_output=True,
                         text=True, env=env).stdout.split()
    if ids:
        subprocess.run(["scancel", *ids], env=env, capture_output=True)
    shutil.rmtree(site.root, ignore_errors=True)


@pytest.fixture
def site(sshd: Sshd, laptop_alias: str, user_python: tuple[str, str],
         slurm_cluster: SlurmCluster) -> Iterator[Site]:
    """A fresh laptop and cluster for one test; cleaned up after."""
    python, packages = user_python
    made = make_site(sshd, laptop_alias, python, f"{packages}:{REPO}", slurm_cluster, _slot())
    try:
        yield made
    finally:
        clean_up(made)


def commit_all(site: Site, message: str) -> None:
    """Commit the laptop's code folder as the laptop user."""
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                 ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m",
                  message]):
        res = site.as_laptop(*argv)
        assert res.returncode == 0, res.stderr
