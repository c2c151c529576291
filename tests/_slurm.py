"""Pytest plugin: real Slurm clusters for tests (see scripts/slurm-test-cluster.sh).

Load it with ``pytest_plugins = ["tests._slurm"]`` in the root conftest.py.

Fixtures (session scoped):

* ``slurm_cluster`` -- the default cluster (MaxArraySize 1001, accounting on). Uses the cluster
  named by ``$SLURM_CONF`` if it answers ``sinfo``, else starts one with the script. Sets
  ``os.environ["SLURM_CONF"]`` for the session. If no cluster can be had the test fails when
  ``CI=true`` and is skipped otherwise (with a loud banner in the terminal summary).
* ``small_array_cluster`` -- a second, private cluster with ``MaxArraySize=5`` and no accounting
  (``sacct`` answers "accounting storage is disabled"); stopped at the end of the session.

Both return a :class:`SlurmCluster`; run client commands with ``env={**os.environ, **c.env}``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slurm: test needs a real Slurm cluster (tests/_slurm.py)")


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
        conf, diag = _start({})
        if conf is None:
            _unavailable(diag)
    os.environ["SLURM_CONF"] = conf  # left set for the rest of the session
    return _cluster(conf)


def _xdist_offset() -> int:
    m = re.search(r"(\d+)$", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return int(m.group(1)) if m else 0


@pytest.fixture(scope="session")
def small_array_cluster():
    n = _xdist_offset()  # each pytest-xdist worker gets its own small cluster
    env = {
        "SLURM_TEST_DIR": f"/tmp/experiments-slurm-small{n}",
        "SLURM_TEST_CLUSTER_NAME": f"exptestsmall{n}",
        "SLURM_TEST_CTLD_PORT": str(16827 + 10 * n),
        "SLURM_TEST_SLURMD_PORT": str(16828 + 10 * n),
        "SLURM_TEST_DBD_PORT": str(16829 + 10 * n),
        "SLURM_TEST_MAX_ARRAY_SIZE": "5",
        "SLURM_TEST_ACCOUNTING": "0",
    }
    conf, diag = _start(env)
    if conf is None:
        _unavailable(diag)
    try:
        yield _cluster(conf)
    finally:
        _script("stop", env)
