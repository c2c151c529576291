"""Pytest plugin: a private OpenSSH daemon on a loopback port, for the ``--on`` tests.

Load it with ``pytest_plugins`` in the root conftest.py. As root it starts
``/usr/sbin/sshd -D -f <conf> -E <log>`` (Debian's openssh-server) on ``127.0.0.1`` at port
``17000 + 100*slot + 50`` (the Slurm test clusters use ``+0..32``), with its own host key,
public-key logins only and ``PermitUserEnvironment yes``, so each test's
``authorized_keys`` line points the cluster user at that test's Slurm cluster, Python and
folders (``environment="SLURM_CONF=…"``). ``UsePAM yes``: the test accounts made by
``useradd`` are locked (``!`` in /etc/shadow), which sshd refuses without PAM even for key
logins. Each login appears in the log as ``Accepted publickey for …``.

Fixture (session scoped): ``sshd`` -- an :class:`Sshd`; stopped at the end of the session.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.slurm_cluster import _slot, _unavailable

SSHD = "/usr/sbin/sshd"


@dataclasses.dataclass(frozen=True)
class Sshd:
    """A running private sshd: where it listens, its log, its host key, its key file."""

    dir: Path
    port: int
    log: Path
    host_key: str  # the public host key line ("ssh-ed25519 AAAA…")
    authorized_keys: Path  # rewritten by each test (sshd reads it at every login)

    def logins(self) -> int:
        """How many logins the daemon accepted so far."""
        return self.log.read_text(errors="replace").count("Accepted publickey for")

    def authorize(self, lines: list[str]) -> None:
        """Make ``lines`` the whole authorized keys file (every user of this daemon)."""
        self.authorized_keys.write_text("".join(line + "\n" for line in lines))
        os.chmod(self.authorized_keys, 0o644)


def _config(folder: Path, port: int) -> str:
    return f"""Port {port}
ListenAddress 127.0.0.1
HostKey {folder}/host_ed25519
PidFile {folder}/sshd.pid
AuthorizedKeysFile {folder}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM yes
StrictModes no
PermitUserEnvironment yes
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
"""


def _stop(folder: Path) -> None:
    try:
        pid = int((folder / "sshd.pid").read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        pass


def start(folder: Path, port: int) -> tuple[Sshd, subprocess.Popen[bytes]]:
    """A private sshd in ``folder`` (made afresh) on ``127.0.0.1:port``; raises when it does
    not come up."""
    _stop(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(folder / "host_ed25519")], check=True, stdin=subprocess.DEVNULL)
    (folder / "sshd_config").write_text(_config(folder, port))
    log = folder / "sshd.log"
    log.touch()
    daemon = Sshd(folder, port, log, (folder / "host_ed25519.pub").read_text().strip(),
                  folder / "authorized_keys")
    daemon.authorize([])
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    proc = subprocess.Popen([SSHD, "-D", "-f", str(folder / "sshd_config"), "-E", str(log)],
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while "Server listening" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"sshd did not start: {log.read_text(errors='replace')[-500:]}")
        time.sleep(0.05)
    return daemon, proc


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    if os.geteuid() != 0 or not os.path.exists(SSHD):
        _unavailable(f"the --on tests start a private {SSHD} as root (apt-get install "
                     "openssh-server)")
    slot = _slot()
    try:
        daemon, proc = start(Path(f"/tmp/experiments-sshd-s{slot}"), 17000 + 100 * slot + 50)
    except RuntimeError as exc:
        _unavailable(str(exc))
    try:
        yield daemon
    finally:
        proc.terminate()
        proc.wait(timeout=30)
