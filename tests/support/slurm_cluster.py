"""Pytest plugin: real Slurm clusters for tests (see scripts/slurm-test-cluster.sh).

Loaded as a plugin by ``pytest_plugins`` in tests/conftest.py.

Fixtures (session scoped):

* ``slurm_cluster`` -- the default cluster (MaxArraySize 1001, accounting on, gres/gpu *not* an
  accounted TRES, as in Slurm's default: partitions list no GPUs in their TRES, the node's GRES
  has 8; ``SLURM_TEST_GPU_ACCOUNTING=0`` pins that). Uses the cluster
  named by ``$SLURM_CONF`` if it answers ``sinfo``, else starts one with the script. Sets
  ``os.environ["SLURM_CONF"]`` for the session. If no cluster can be had the test fails when
  ``CI=true`` and is skipped otherwise (with a loud banner in the terminal summary).
* ``small_array_cluster`` -- a second, private cluster with ``MaxArraySize=5``, ``MaxJobCount=200`` and no accounting
  (``sacct`` answers "accounting storage is disabled"); stopped at the end of the session.
* ``faults_cluster`` -- a third, private cluster (no accounting) whose controller the
  reliability tests stop, freeze (SIGSTOP) and restart; its slurmctld pid file is
  ``<dir>/slurmctld.pid``. Stopped at the end of the session if this session started it. A
  :class:`FaultsCluster`, whose methods do those faults.
* ``second_cluster`` -- a function ``(first_job_id) -> SlurmCluster``: the *second* cluster
  (default-like, its own ports and ``ClusterName``, no accounting), begun afresh so that its
  next job id is ``first_job_id`` (``FirstJobId``): two clusters behind one home whose ids
  collide. Stopped at the end of the session.
* ``test_users`` -- the unprivileged Unix users ``expuser1`` and ``expuser2`` (with homes),
  created with ``useradd`` if missing (needs root).
* ``user_python`` -- (a Python every user can run, a folder of copies of the CLI's packages).
* ``policed_cluster`` -- the *policed* cluster (``SLURM_TEST_POLICED=1``: required accounts, QOS
  limits, partition MaxTime, preemption, a maintenance reservation; the script's header lists
  them) with associations for ``test_users``. A :class:`PolicedCluster`; stopped at the end of
  the session if this session started it.

All return a :class:`SlurmCluster`; run client commands with ``c.run(...)`` (as root) or
``c.run_as(user, ...)`` (as an unprivileged user), or with ``env={**os.environ, **c.env}``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm-test-cluster.sh"
START_TIMEOUT = 900  # seconds; covers a first-time apt-get install of Slurm and MariaDB

_skipped_reasons: list[str] = []


@dataclasses.dataclass(frozen=True)
class SlurmCluster:
    conf: str  # path to slurm.conf
    env: dict[str, str]  # env vars for Slurm client commands (SLURM_CONF)
    max_array_size: int

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a Slurm client command (argv list) against this cluster; text output captured."""
        return subprocess.run(
            list(argv), env={**os.environ, **self.env}, capture_output=True, text=True,
            check=check, timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def run_as(self, user: str, *argv: str, check: bool = True, timeout: float = 60,
               cwd: str | None = None) -> subprocess.CompletedProcess:
        """Run a command as ``user`` (``runuser``; we are root) against this cluster.

        The command gets a clean environment (PATH, HOME, USER, LOGNAME and the cluster's
        SLURM_CONF), not root's, and runs in the user's home unless ``cwd`` is given, so that
        sbatch's default working directory and output files are the user's own.
        """
        home = pwd.getpwnam(user).pw_dir
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "USER": user,
               "LOGNAME": user, "LANG": "C.UTF-8", **self.env}
        return subprocess.run(
            ["runuser", "-u", user, "--", *argv], env=env, cwd=cwd or home, capture_output=True,
            text=True, check=check, timeout=timeout, stdin=subprocess.DEVNULL,
        )


@dataclasses.dataclass(frozen=True)
class PolicedCluster(SlurmCluster):
    """The policed cluster: who may use it, and under which accounts."""

    users: tuple[str, ...] = ()  # every one has an association in ``account``
    account: str = "physics"  # the account every test user belongs to (their default)
    other_account: str = "chemistry"  # only users[0] belongs to it


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slurm: test needs a real Slurm cluster (tests/support/slurm_cluster.py)")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _skipped_reasons:
        tr = terminalreporter
        tr.write_sep("!", "SLURM TESTS WERE SKIPPED: no Slurm cluster available", red=True, bold=True)
        for reason in dict.fromkeys(_skipped_reasons):
            tr.write_line(reason, red=True)
        tr.write_sep("!", "start one with: scripts/slurm-test-cluster.sh start  (as root)", red=True, bold=True)


def _answers(conf: str) -> bool:
    try:
        r = subprocess.run(["sinfo", "-h"], env={**os.environ, "SLURM_CONF": conf},
                           capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def _cluster(conf: str) -> SlurmCluster:
    env = {"SLURM_CONF": conf}
    out = subprocess.run(["scontrol", "show", "config"], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=30, check=True).stdout
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.M)
    return SlurmCluster(conf=conf, env=env, max_array_size=int(m.group(1)) if m else 1001)


def _script(action: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **extra_env}
    env.pop("SLURM_CONF", None)  # the script derives it from SLURM_TEST_DIR
    return subprocess.run(["bash", str(SCRIPT), action], env=env, capture_output=True, text=True,
                          timeout=START_TIMEOUT, stdin=subprocess.DEVNULL, cwd=REPO)


def _start(extra_env: dict[str, str]) -> tuple[str | None, str]:
    """Start a cluster with the script; (slurm.conf path or None, diagnostics)."""
    try:
        r = _script("start", extra_env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{SCRIPT} start: {e}"
    m = re.search(r"^export SLURM_CONF=(\S+)\s*$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        return None, f"{SCRIPT} start exited {r.returncode}:\n{r.stderr[-3000:]}"
    return m.group(1), r.stderr


def _unavailable(msg: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but no Slurm cluster is available: {msg}", pytrace=False)
    _skipped_reasons.append(msg)
    banner = "!" * 20 + " SLURM TESTS SKIPPED: no Slurm cluster available " + "!" * 20
    pytest.skip(f"\n{banner}\n{msg}\nStart one with: scripts/slurm-test-cluster.sh start (as root), "
                f"or export SLURM_CONF of a running cluster.\n{banner}")


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    conf = os.environ.get("SLURM_CONF")
    if not (conf and _answers(conf)):
        conf, diag = _start(cluster_env("default"))
        if conf is None:
            _unavailable(diag)
    os.environ["SLURM_CONF"] = conf  # left set for the rest of the session
    return _cluster(conf)


def _slot() -> int:
    """Which set of private clusters this pytest process uses: ``$EXPERIMENTS_TEST_SLOT``
    (for several checkouts tested side by side on one machine) times ten plus the pytest-xdist
    worker number, so no two processes ever share a private cluster's directory or ports."""
    m = re.search(r"(\d+)$", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return int(os.environ.get("EXPERIMENTS_TEST_SLOT") or 0) * 10 + (int(m.group(1)) if m else 0)


#: The kinds of test cluster, with the third digit of their ports (see :func:`cluster_env`).
_KINDS = {"default": 0, "small": 1, "faults": 2, "policed": 3, "second": 4}


def cluster_env(kind: str, slot: int | None = None) -> dict[str, str]:
    """Script environment of test cluster ``kind`` for ``slot`` (default: :func:`_slot`).

    Slot 0's default and policed clusters are the script's own (/tmp/experiments-slurm, ports
    16817-16819; /tmp/experiments-slurm-policed, 16831-16833). Every other cluster gets its own
    directory and the ports ``17000 + 100*slot + 10*kind + 0..2``.
    """
    slot = _slot() if slot is None else slot
    env = {"SLURM_TEST_POLICED": "1", "SLURM_TEST_POLICED_USERS": " ".join(TEST_USERS)} \
        if kind == "policed" else {"SLURM_TEST_GPU_ACCOUNTING": "0"}
    if slot or kind in ("small", "faults", "second"):
        port = 17000 + 100 * slot + 10 * _KINDS[kind]
        suffix = f"{kind}{slot}" if kind != "default" else f"s{slot}"
        env.update({
            "SLURM_TEST_DIR": f"/tmp/experiments-slurm-{suffix}",
            "SLURM_TEST_CLUSTER_NAME": f"exptest{suffix}",
            "SLURM_TEST_CTLD_PORT": str(port),
            "SLURM_TEST_SLURMD_PORT": str(port + 1),
            "SLURM_TEST_DBD_PORT": str(port + 2),
        })
    if kind in ("small", "faults", "second"):
        env["SLURM_TEST_ACCOUNTING"] = "0"
    if kind == "small":
        env["SLURM_TEST_MAX_ARRAY_SIZE"] = "5"
        env["SLURM_TEST_MAX_JOB_COUNT"] = "200"  # small enough for a launch to exceed it
    return env


@contextlib.contextmanager
def _private(kind: str, stop_always: bool = False) -> Iterator[tuple[SlurmCluster, dict[str, str]]]:
    """Start (or re-provision) test cluster ``kind``; stop it at the end if this started it."""
    env = cluster_env(kind)
    default_dir = "/tmp/experiments-slurm-policed" if kind == "policed" else "/tmp/experiments-slurm"
    was_up = _answers(os.path.join(env.get("SLURM_TEST_DIR", default_dir), "slurm.conf"))
    conf, diag = _start(env)  # also when up: the policed start re-arms its reservation
    if conf is None:
        _unavailable(diag)
    try:
        yield _cluster(conf), env
    finally:
        if stop_always or not was_up:
            _script("stop", env)


@pytest.fixture(scope="session")
def small_array_cluster():
    with _private("small", stop_always=True) as (cluster, _env):
        yield cluster


def second_cluster_from(first_job_id: int) -> SlurmCluster:
    """The *second* cluster (default-like, its own ports and ClusterName, no accounting), begun
    afresh so that its next job id is ``first_job_id``: a site with two clusters behind one
    home whose ids collide. Stopped at the end of the session by :func:`second_cluster`."""
    # the start's smoke job takes the first id
    env = {**cluster_env("second"), "SLURM_TEST_FIRST_JOB_ID": str(first_job_id - 1)}
    _script("stop", env)
    state = Path(env["SLURM_TEST_DIR"]) / "state"
    for saved in state.glob("job_state*"):  # the saved next id would win over FirstJobId
        saved.unlink()
    conf, diag = _start(env)
    if conf is None:
        _unavailable(diag)
    _second_started.append(env)
    return _cluster(conf)


_second_started: list[dict[str, str]] = []


@pytest.fixture(scope="session")
def second_cluster():
    """A function ``(first_job_id) -> SlurmCluster`` for the second cluster (see
    :func:`second_cluster_from`); the cluster is stopped at the end of the session."""
    yield second_cluster_from
    for env in _second_started[-1:]:
        _script("stop", env)


def faults_env(n: int | None = None) -> dict[str, str]:
    """Script environment of the faults cluster (each slot gets its own)."""
    return cluster_env("faults", n)


#: The size of the controller's table while ``FaultsCluster.queue_full`` holds it full.
FULL_QUEUE = 10


@dataclasses.dataclass(frozen=True)
class FaultsCluster(SlurmCluster):
    """A private cluster whose controller tests may stop, freeze and restart."""

    script_env: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def dir(self) -> Path:
        """The cluster's own folder (its slurm.conf's, unless the script was told another)."""
        return Path(self.script_env.get("SLURM_TEST_DIR") or Path(self.conf).parent)

    def ctld_pid(self) -> int | None:
        """The live slurmctld's pid (None when it is not running)."""
        try:
            pid = int((self.dir / "slurmctld.pid").read_text().strip())
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError):
            return None
        return pid if comm == "slurmctld" else None

    def signal_ctld(self, sig: int) -> None:
        pid = self.ctld_pid()
        assert pid, "slurmctld is not running"
        os.kill(pid, sig)

    def freeze(self) -> None:
        """SIGSTOP the controller: it accepts connections (the kernel does) but never answers."""
        self.signal_ctld(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal_ctld(signal.SIGCONT)

    def stop_ctld(self) -> None:
        """Stop slurmctld only (SIGTERM, it saves its state), and wait until it is gone."""
        pid = self.ctld_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGCONT)  # a frozen controller cannot act on SIGTERM
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.1)

    def start(self) -> None:
        """(Re)start whatever is not running, with the script; waits until the node is up."""
        r = _script("start", self.script_env)
        assert r.returncode == 0, r.stderr[-2000:]

    def heal(self) -> None:
        """Whatever a test did to the controller, leave it running and answering."""
        pid = self.ctld_pid()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        self.start()

    @contextlib.contextmanager
    def queue_full(self) -> Iterator[None]:
        """``MaxJobCount=FULL_QUEUE`` (``scontrol reconfigure``): with that many jobs already in
        the controller's table (submit them first), sbatch hears "temporarily unable to accept
        job" and sleeps and retries by itself. (A launch with at least MaxJobCount tasks is
        refused before any sbatch, so the limit must stay above the launch's own size.)"""
        conf = Path(self.conf)
        original = conf.read_text()
        conf.write_text(re.sub(r"^MaxJobCount=.*$", f"MaxJobCount={FULL_QUEUE}", original,
                               flags=re.M))
        self.run("scontrol", "reconfigure")
        try:
            yield
        finally:
            conf.write_text(original)
            self.run("scontrol", "reconfigure", check=False)

    def message_timeout_s(self) -> int:
        out = self.run("scontrol", "show", "config").stdout
        m = re.search(r"^MessageTimeout\s*=\s*(\d+)", out, re.M)
        return int(m.group(1)) if m else 10


@pytest.fixture(scope="session")
def faults_cluster():
    with _private("faults") as (base, env):
        yield FaultsCluster(conf=base.conf, env=base.env, max_array_size=base.max_array_size,
                            script_env=env)


@pytest.fixture
def faults(faults_cluster: FaultsCluster, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[FaultsCluster]:
    """The faults cluster as this test's Slurm (``SLURM_CONF``), healed (thawed, started) before
    and after the test, whatever the test did to its controller."""
    monkeypatch.setenv("SLURM_CONF", faults_cluster.conf)
    faults_cluster.heal()
    try:
        yield faults_cluster
    finally:
        faults_cluster.heal()


TEST_USERS = ("expuser1", "expuser2")


def ensure_user(name: str) -> str | None:
    """Create the Unix user ``name`` with a home if it is missing; None, or why it can't be had."""
    try:
        pwd.getpwnam(name)
        return None
    except KeyError:
        pass
    if os.geteuid() != 0:
        return f"user {name} does not exist and only root can create it (useradd -m {name})"
    r = subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        return f"useradd -m {name} failed: {r.stderr.strip()}"
    return None


@pytest.fixture(scope="session")
def test_users() -> tuple[str, ...]:
    for name in TEST_USERS:
        problem = ensure_user(name)
        if problem:
            _unavailable(problem)
    return TEST_USERS


# Third-party packages the CLI imports (click, rich and theirs; jinja2 for the report).
PACKAGES = ("click", "rich", "pygments", "markdown_it", "mdurl", "jinja2", "markupsafe",
            "filelock")


def copy_user_packages() -> tuple[str, str]:
    """(a Python every user can run, a new folder of copies of the CLI's packages for it):
    the test users cannot execute the interpreter the suite runs under when it lives in
    root's home (mode 700). The caller removes the folder."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    assert python, "these tests need a system python3 that unprivileged users can run"
    folder = tempfile.mkdtemp(prefix="experiments-userpy-")
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec and spec.submodule_search_locations, f"{name} is not installed"
        shutil.copytree(spec.submodule_search_locations[0], Path(folder) / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["chmod", "-R", "a+rX", folder], check=True)
    os.chmod(folder, 0o755)
    return python, folder


@pytest.fixture(scope="session")
def user_python() -> Iterator[tuple[str, str]]:
    """See :func:`copy_user_packages`."""
    python, folder = copy_user_packages()
    yield python, folder
    shutil.rmtree(folder, ignore_errors=True)


def policed_env(n: int | None = None) -> dict[str, str]:
    """Script environment of the policed cluster (each slot gets its own)."""
    return cluster_env("policed", n)


@pytest.fixture(scope="session")
def policed_cluster(test_users: tuple[str, ...]):
    with _private("policed") as (base, _env):
        yield PolicedCluster(conf=base.conf, env=base.env, max_array_size=base.max_array_size,
                             users=test_users)
