"""Shared spaces let no one in (issue 25), with two unprivileged accounts on the policed cluster.

``expuser1`` runs the experiment's CLI (``runuser``, a clean environment, the system Python) and
its jobs run as ``expuser1`` on the cluster; ``expuser2`` is the hostile lab-mate with a shell on
the same machine and the same shared artifact root (a root-owned sticky folder, like ``/tmp``):

* a planted artifact folder (777, expuser2's), a class folder owned by expuser2 and a
  ``.checkpoint`` symlink are refused by the worker, and nothing is written into them;
* an output swapped by expuser2 after the done marker makes ``status``, ``table`` and the
  downstream worker say "modified" instead of "built", and nothing consumes it;
* ``serve`` shows expuser2 nothing (no token), also with the token through a forged ``Host``, and
  400 idle connections hold a bounded number of its threads;
* a site file that is group-writable, in a world-writable folder, or a symlink to one, makes
  every verb exit 2 without doing anything; ``--set J=…`` and friends are refused at drylaunch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from experiments.report.serve import MAX_THREADS
from tests.support.slurm_cluster import PolicedCluster

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]

EXPERIMENT = '''
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

REQS = {"account": "physics", "partition": "short", "time": "5"}

@dataclass(frozen=True)
class Train(Artifact):
    lr: float
    def get_requirements(self):
        return REQS
    def construct(self, builder: Task):
        builder.run_command(
            'cat "$EXPERIMENTS_CHECKPOINT_DIR"/state 2>/dev/null; '
            'echo "{\\\\"acc\\\\": 0.91}" > "$EXPERIMENTS_ARTIFACT_DIR/metrics.json"; '
            'echo genuine-weights > "$EXPERIMENTS_ARTIFACT_DIR/weights.txt"')

@dataclass(frozen=True)
class Use(Artifact):
    model: Train
    def get_requirements(self):
        return REQS
    def construct(self, builder: Task):
        weights = f"{builder.artifact_path}/{self.model.relpath}/weights.txt"
        builder.run_command(f'cat {weights} > "$EXPERIMENTS_ARTIFACT_DIR/used.txt"')

ex = SlurmExecutor(project=PROJECT, artifact_path=ROOT, code_path=CODE)
ex.stage("train", ArtifactSet.from_product(cls=Train, params={"lr": [0.1]}))
ex.stage("use", ArtifactSet.from_product(cls=Use, params={"model": [Train(lr=0.1)]}))
if __name__ == "__main__":
    ex.auto_cli()
'''


@dataclass
class Lab:
    """A shared artifact root, expuser1's experiment (project folder ``dir``) and expuser2."""

    cluster: PolicedCluster
    me: str
    other: str
    shared: Path
    dir: Path
    name: str
    python: str
    pythonpath: str
    env: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``python exp.py ARGS`` as expuser1."""
        env = [f"EXPERIMENTS_HOME={self.dir}/home", f"PYTHONPATH={self.pythonpath}",
               "COLUMNS=200", *(f"{k}={v}" for k, v in self.env.items())]
        return self.cluster.run_as(self.me, "env", *env, self.python, "exp.py", *args,
                                   check=False, timeout=timeout, cwd=str(self.dir))

    def sh(self, user: str, script: str) -> subprocess.CompletedProcess[str]:
        """A shell command as ``user`` (expuser2: the lab-mate)."""
        return self.cluster.run_as(user, "bash", "-c", script, check=False, cwd="/tmp")

    def folder(self, stage: str) -> Path:
        """The folder of the stage's one artifact, as ``table`` names it."""
        res = self.cli("table", stage, "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        return Path(json.loads(res.stdout)["rows"][0]["folder"])

    def wait(self, stage: str) -> subprocess.CompletedProcess[str]:
        launched = self.cli("launch", stage)
        assert launched.returncode == 0, launched.stdout + launched.stderr
        return self.cli("wait", stage, "--timeout", "240", timeout=300)

    def log(self) -> str:
        """The newest task log of the project (what the worker said)."""
        logs = sorted((self.dir / "home" / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)
        assert logs, "no task log"
        return logs[-1].read_text()


@pytest.fixture
def lab(policed_cluster: PolicedCluster, user_python: tuple[str, str]) -> Iterator[Lab]:
    me, other = policed_cluster.users[:2]
    shared = Path(tempfile.mkdtemp(prefix="experiments-shared-"))
    os.chmod(shared, 0o1777)  # root's, sticky: anyone may make folders, only theirs
    folder = Path(tempfile.mkdtemp(prefix="experiments-lab-"))
    name = f"lab{uuid.uuid4().hex[:8]}"
    (folder / "exp.py").write_text(f"PROJECT = {name!r}\nROOT = {str(shared)!r}\n"
                                   f"CODE = {str(folder / 'code')!r}\n" + EXPERIMENT)
    (folder / "code").mkdir()
    subprocess.run(["chown", "-R", me, str(folder)], check=True)
    os.chmod(folder, 0o755)
    python, packages = user_python
    lab = Lab(policed_cluster, me, other, shared, folder, name, python, f"{packages}:{REPO}",
              {"EXPERIMENTS_SITE_CONFIG": ""})
    yield lab
    out = policed_cluster.run("squeue", "-h", "-r", "-u", me, "-o", "%i|%j", check=False).stdout
    ids = sorted({line.split("|")[0].split("_")[0] for line in out.splitlines() if name in line})
    if ids:
        policed_cluster.run("scancel", *ids, check=False)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(shared, ignore_errors=True)


# -- artifact folders -----------------------------------------------------------------------
def test_a_planted_777_folder_is_refused_and_left_as_it_was(lab: Lab) -> None:
    target = lab.folder("train")
    lab.sh(lab.me, f"mkdir -m 1777 {target.parent}")  # a sticky class folder of mine: fine
    planted = lab.sh(lab.other, f"mkdir -m 777 {target} && "
                                f"echo '{{\"acc\": 0.99}}' > {target}/metrics.json")
    assert planted.returncode == 0, planted.stderr
    waited = lab.wait("train")
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert sorted(p.name for p in target.iterdir()) == ["metrics.json"]  # nothing written
    log = lab.log()
    assert "refusing to build Train/" in log and f"in {target} (drwxrwxrwx {lab.other}:" in log
    assert f"it is owned by {lab.other}" in log and "trusted_users" in log
    table = json.loads(lab.cli("table", "train", "--json").stdout)["rows"]
    assert table[0]["state"] == "failed"


def test_a_class_folder_owned_by_the_other_account_is_refused(lab: Lab) -> None:
    target = lab.folder("train")
    made = lab.sh(lab.other, f"mkdir -m 1777 {target.parent}")  # anyone may add to it
    assert made.returncode == 0, made.stderr
    waited = lab.wait("train")
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert not target.exists()
    assert ("refusing to build Train/" in lab.log()
            and f"in {target.parent} (drwxrwxrwt {lab.other}:" in lab.log())


def test_a_checkpoint_symlink_is_not_followed(lab: Lab) -> None:
    target = lab.folder("train")
    poison = Path(tempfile.mkdtemp(prefix="experiments-poison-"))
    (poison / "state").write_text("POISONED CHECKPOINT\n")
    subprocess.run(["chown", "-R", lab.other, str(poison)], check=True)
    os.chmod(poison, 0o755)
    try:
        assert lab.sh(lab.me, f"mkdir -p {target}").returncode == 0  # my own folder …
        (target / ".checkpoint").symlink_to(poison)  # … once open to the lab-mate
        os.lchown(target / ".checkpoint", *_ids(lab.other))
        waited = lab.wait("train")
        assert waited.returncode == 1, waited.stdout + waited.stderr
        log = lab.log()
        assert "POISONED" not in log and not (target / ".done").exists()
        assert f"{target}/.checkpoint is a symlink (to {poison}, made by {lab.other})" in log
    finally:
        shutil.rmtree(poison, ignore_errors=True)


def test_an_output_swapped_after_the_marker_is_flagged_and_not_consumed(lab: Lab) -> None:
    assert lab.wait("train").returncode == 0
    target = lab.folder("train")
    assert lab.sh(lab.me, f"chmod 777 {target}").returncode == 0  # a slip: the folder opened
    swap = lab.sh(lab.other, f"cd {target} && rm -f metrics.json weights.txt && "
                             "echo '{\"acc\": 0.99}' > metrics.json && "
                             "echo BACKDOORED > weights.txt")
    assert swap.returncode == 0, swap.stderr
    status = lab.cli("status")
    assert status.returncode == 1, status.stdout + status.stderr
    assert "modified Train/lr=0.1-" in status.stdout and "every user can write in it" in (
        status.stdout) and "built, but not safely yours" in status.stdout, status.stdout
    [row] = json.loads(lab.cli("table", "train", "--json").stdout)["rows"]
    assert row["state"] == "modified"
    waited = lab.wait("use")
    assert waited.returncode == 1, waited.stdout + waited.stderr
    used = lab.folder("use")
    assert not (used / "used.txt").exists() and not (used / ".done").exists()
    assert "dependency failed: Train/" in lab.log() and "is not as its build left it" in lab.log()
    assert lab.sh(lab.me, f"chmod 755 {target}").returncode == 0  # closed again: the files
    [row] = json.loads(lab.cli("table", "train", "--json").stdout)["rows"]  # still expuser2's
    assert row["state"] == "modified"
    report = lab.cli("report", "-o", str(lab.dir / "report.html"))
    assert report.returncode == 0, report.stdout + report.stderr
    assert f"metrics.json in {target} belongs to {lab.other}" in (
        lab.dir / "report.html").read_text()


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


# -- serve ----------------------------------------------------------------------------------
@dataclass
class Served:
    """expuser1's ``serve``: its process, base URL, port and token ("" when it prints none)."""

    proc: subprocess.Popen[str]
    base: str
    port: int
    token: str


@pytest.fixture
def served(lab: Lab) -> Iterator[Served]:
    env = [f"EXPERIMENTS_HOME={lab.dir}/home", f"PYTHONPATH={lab.pythonpath}",
           "EXPERIMENTS_SITE_CONFIG="]
    proc = subprocess.Popen(
        ["runuser", "-u", lab.me, "--", "env", *env, lab.python, "exp.py", "serve", "--port",
         "0"], cwd=lab.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": os.environ["PATH"], **lab.cluster.env})
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        found = re.search(r"(http://127\.0\.0\.1:(\d+)/)(?:\?token=(\S+))?", line)
        assert found, line
        base, port, token = found.groups()
        yield Served(proc, base, int(port), token or "")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_shows_the_other_account_nothing(lab: Lab, served: Served) -> None:
    assert lab.wait("train").returncode == 0
    job_id = json.loads(lab.cli("history", "--json").stdout)["jobs"][0]["job_id"]
    log = f"{served.base}log/{job_id}_0"
    for url in (served.base, f"{served.base}live", log, f"{served.base}?token=guess"):
        code, body = _curl(lab, lab.other, url)
        assert code == "403" and lab.name not in body and "Train/" not in body, (url, code)
    code, body = _curl(lab, lab.me, f"{log}?token={served.token}")
    assert code == "200" and "built Train/" in body
    served.proc.terminate()
    out, err = served.proc.communicate(timeout=30)
    assert served.token not in out + err  # the first line (read above) was the only one


def test_serve_refuses_a_forged_host_even_with_the_token(lab: Lab, served: Served) -> None:
    url = f"{served.base}?token={served.token}"
    code, body = _curl(lab, lab.other, url, host=f"attacker.example:{served.port}")
    assert code == "403" and lab.name not in body
    assert _curl(lab, lab.me, url, host=f"localhost:{served.port}")[0] == "200"


def test_serve_holds_a_bounded_number_of_threads_for_400_idle_connections(
        lab: Lab, served: Served) -> None:
    threads = _idle_connections(lab, served.port, _server_pid(served.proc.pid))
    assert threads <= MAX_THREADS + 2, threads
    assert _curl(lab, lab.me, f"{served.base}?token={served.token}")[0] == "200"


def _curl(lab: Lab, user: str, url: str, host: str | None = None) -> tuple[str, str]:
    extra = ["-H", f"Host: {host}"] if host else []
    res = lab.cluster.run_as(user, "curl", "-s", "-w", "\n%{http_code}", *extra, url,
                             check=False)
    body, _, code = res.stdout.rpartition("\n")
    return code, body


def _server_pid(runuser: int) -> int:
    """The Python process serving (runuser's child, env's exec)."""
    for _ in range(50):
        children = Path(f"/proc/{runuser}/task/{runuser}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise AssertionError("serve has no process")


IDLE = '''
import selectors, socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(400)]
sel, busy, deadline = selectors.DefaultSelector(), 0, time.monotonic() + 60
for s in socks:
    sel.register(s, selectors.EVENT_READ)
while busy < 400 - int(sys.argv[2]) and time.monotonic() < deadline:  # the rest: told "busy"
    for key, _ in sel.select(timeout=1):
        busy += key.fileobj.recv(100).startswith(b"HTTP/1.0 503")
        sel.unregister(key.fileobj)
print("open", busy, flush=True)
sys.stdin.readline()
'''


def _idle_connections(lab: Lab, port: int, server: int) -> int:
    """The serving process's thread count while expuser2 holds 400 idle connections to it."""
    proc = subprocess.Popen(["runuser", "-u", lab.other, "--", lab.python, "-c", IDLE,
                             str(port), str(MAX_THREADS)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/tmp")
    try:  # every connection is accepted: the rest sit idle in the server's threads
        said = proc.stdout.readline().split() if proc.stdout else []
        threads = len(os.listdir(f"/proc/{server}/task"))
        assert said == ["open", str(400 - MAX_THREADS)], (said, threads)
        return threads
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=30)


# -- config ---------------------------------------------------------------------------------
@pytest.fixture
def site_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="experiments-site-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _site(folder: Path, mode: int = 0o644, group: str | None = None) -> Path:
    path = folder / "config.json"
    path.write_text(json.dumps({"setup": ["echo site setup ran"]}))
    os.chmod(path, mode)
    if group:
        shutil.chown(path, group=group)
    return path


def _refused_everywhere(lab: Lab, site: Path, who: str) -> None:
    lab.env["EXPERIMENTS_SITE_CONFIG"] = str(site)
    for verb in (["status"], ["config", "show"], ["launch", "train"], ["drylaunch"]):
        res = lab.cli(*verb)
        assert res.returncode == 2, (verb, res.stdout, res.stderr)
        assert f"the site config {site} could be changed by {who}" in res.stderr, res.stderr
    assert not (lab.dir / "home" / "projects").exists()  # nothing launched, nothing recorded


def test_a_group_writable_site_file_is_refused(lab: Lab, site_dir: Path) -> None:
    site = _site(site_dir, 0o664, group=lab.other)  # expuser2's group may write it
    _refused_everywhere(lab, site, f"every member of the group {lab.other}")
    os.chmod(site, 0o644)
    assert lab.cli("drylaunch").returncode == 0  # only root can change it now: used


def test_a_site_file_in_a_world_writable_folder_is_refused(lab: Lab, site_dir: Path) -> None:
    open_dir = site_dir / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)  # anyone could replace the file
    _refused_everywhere(lab, _site(open_dir), "every user")


def test_a_symlinked_site_file_is_judged_by_its_target(lab: Lab, site_dir: Path) -> None:
    open_dir = site_dir / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    target = _site(open_dir)
    link = site_dir / "site.json"
    link.symlink_to(target)
    _refused_everywhere(lab, link, "every user")


def test_set_names_sbatch_does_not_know_are_refused_at_drylaunch(lab: Lab) -> None:
    for text, says in (("J=mine", "-J is short for --job-name"),
                       ("D=/tmp", "-D is short for --chdir"), ("H=true", "-H is short for --hold"),
                       ("part=short", "abbreviation of --partition"),
                       ("tiem=5", "did you mean --time?")):
        res = lab.cli("drylaunch", "--set", text)
        assert res.returncode != 0 and says in res.stdout + res.stderr, (text, res.stdout,
                                                                         res.stderr)
    assert lab.cli("drylaunch", "--set", "partition=short").returncode == 0
