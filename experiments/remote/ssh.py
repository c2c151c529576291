"""OpenSSH for ``--on``: one multiplexed connection per sitting, and what its failures mean.

Every command goes through ``ssh -o ControlMaster=auto -o ControlPath=<home>/ssh/%C -o
ControlPersist=60``: the first one logs in (asking for a second factor at the terminal if the
cluster wants one) and leaves OpenSSH's master behind for 60 idle seconds; every later call
in that time rides on it without a new login. The socket folder is private (mode 700).
ssh's own stderr goes to an unlinked temporary file, not a pipe: the master inherits it
and would hold a pipe open for its whole life. ``diagnose`` turns ssh's and the remote
Python's complaints into one message each, saying what to do.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import stat
import tempfile
from pathlib import Path
from typing import IO

from .. import __version__, _proc
from ..config.remotes import Remote
from ..errors import ExperimentsError
from . import protocol

PERSIST_S = 60
CONNECT_TIMEOUT_S = 30
PACKAGE = "slurm-experiments"  # the distribution name to install on the cluster
_SUN_PATH = 104  # bytes a socket path may use (108 on Linux, less elsewhere), NUL included
_SOCKET_NAME = 40 + 17  # %C (40 hex) plus the ".XXXXXXXXXXXXXXXX" ssh adds while binding
_HELLO_LIMIT = 1 << 16


class RemoteError(ExperimentsError):
    """The cluster of ``--on NAME`` could not be reached or used (exit code 255, as ssh)."""

    exit_code = 255


def control_dir(home: Path) -> Path:
    """The private folder of the master sockets: ``<home>/ssh``, or a folder of ours in the
    temp dir when that path is too long for a socket name."""
    folder = home / "ssh"
    if len(os.fsencode(str(folder))) + 1 + _SOCKET_NAME >= _SUN_PATH:
        folder = Path(tempfile.gettempdir()) / f"experiments-ssh-{os.getuid()}"
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise RemoteError(f"{folder} (for SSH connection sockets) is not a folder of yours; "
                          "remove it, or set EXPERIMENTS_HOME to a folder of yours")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(folder, 0o700)
    return folder


def base_argv(control: Path) -> list[str]:
    """``ssh`` with the options every call shares (the one master, no terminal)."""
    return ["ssh", "-T", "-o", "ControlMaster=auto", "-o", f"ControlPath={control}/%C",
            "-o", f"ControlPersist={PERSIST_S}", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]


def agent_argv(remote: Remote, control: Path) -> list[str]:
    """The ssh command that runs the agent with the remote's Python."""
    command = shlex.join([remote.python, "-m", "experiments.remote.agent"])
    return [*base_argv(control), "--", remote.ssh, command]


class Channel:
    """One SSH session running the agent: frames both ways, counted, then its exit status."""

    def __init__(self, remote: Remote, control: Path) -> None:
        """Start ``ssh`` running the agent; ssh's stderr goes to an unlinked temp file."""
        self.remote = remote
        self.control = control
        self.sent = 0
        self.received = 0
        self.broken = False  # the agent's end closed while we were still sending
        self._err = tempfile.TemporaryFile(dir=control)
        self.child = _proc.converse(agent_argv(remote, control), stderr=self._err)

    @property
    def _out(self) -> IO[bytes]:
        """The agent's side of the conversation (ssh's stdout)."""
        assert self.child.popen.stdout is not None
        return self.child.popen.stdout

    def send(self, data: bytes) -> None:
        """Write ``data`` to the agent. When its end is closed, nothing is raised here: the
        agent may have refused the request (its reply says why), and reading tells."""
        stdin = self.child.popen.stdin
        assert stdin is not None
        if self.broken:
            return
        try:
            stdin.write(data)
            stdin.flush()
        except (BrokenPipeError, ValueError):
            self.broken = True
            return
        self.sent += len(data)

    def hello(self) -> bytes:
        """Wait for the agent's greeting; returns what the cluster's shell printed before it."""
        junk = b""
        while len(junk) < _HELLO_LIMIT:
            line = self._out.readline()
            if not line:
                raise self.failure()
            self.received += len(line)
            if line == protocol.AGENT_HELLO:
                return junk
            junk += line
        raise RemoteError(f"remote {self.remote.name!r}: the cluster's login scripts printed "
                          f"more than {_HELLO_LIMIT} bytes before the agent started: "
                          f"{junk[:200]!r}; keep them quiet for non-interactive shells")

    def frame(self) -> tuple[bytes, bytes]:
        """The agent's next frame; a hang-up raises what ssh said."""
        try:
            kind, payload = protocol.read_frame(self._out)
        except protocol.ProtocolError:
            raise self.failure() from None
        self.received += 5 + len(payload)
        return kind, payload

    def close(self) -> int:
        """Hang up (the agent sees its stdin end) and wait for ssh to exit."""
        stdin = self.child.popen.stdin
        if stdin is not None and not stdin.closed:
            try:
                stdin.close()
            except BrokenPipeError:
                pass
        code = self.child.popen.wait()
        self._out.close()
        return code

    def failure(self) -> RemoteError:
        """Why the session ended before the agent finished, as one clear error."""
        code = self.close()
        self._err.seek(0)
        text = self._err.read().decode("utf-8", "replace")
        self._err.close()
        return diagnose(self.remote, code, text)


def free_port(host: str) -> int:
    """A port nobody listens on at ``host`` now (ssh's -L cannot pick one itself)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host.strip("[]"), 0))
        return int(sock.getsockname()[1])


def forward(remote: Remote, control: Path, host: str, port: int, remote_port: int) -> None:
    """Forward ``host:port`` here to the cluster's loopback ``remote_port``, through the
    master (so no new login), until ``cancel_forward``."""
    spec = f"{host}:{port}:127.0.0.1:{remote_port}"
    res = _proc.run([*base_argv(control), "-O", "forward", "-L", spec, "--", remote.ssh],
                    timeout_s=CONNECT_TIMEOUT_S)
    if not res.ok:
        raise RemoteError(f"cannot serve at {host}:{port} (forwarded to port {remote_port} of "
                          f"{remote.ssh}): {_last(res.stderr, 1)}; choose another --port")


def cancel_forward(remote: Remote, control: Path, host: str, port: int,
                   remote_port: int) -> None:
    """Stop a forwarding ``forward`` made (the master may be gone already: nothing to do)."""
    spec = f"{host}:{port}:127.0.0.1:{remote_port}"
    try:
        _proc.run([*base_argv(control), "-O", "cancel", "-L", spec, "--", remote.ssh],
                  timeout_s=CONNECT_TIMEOUT_S)
    except _proc.ProcTimeout:
        pass


def _last(text: str, n: int = 2) -> str:
    """The last ``n`` meaningful lines of ssh's stderr, as one line."""
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.startswith(("Warning: Permanently added", "debug"))]
    return " | ".join(lines[-n:]) or "(no message)"


def diagnose(remote: Remote, code: int, stderr: str) -> RemoteError:
    """One message per way a first contact fails, each saying what to do."""
    host, name = remote.ssh, remote.name
    if code != 255:  # ssh itself exits 255; anything else is the remote command's status
        return _remote_side(remote, code, stderr)
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or "has changed and you have" in stderr:
        return RemoteError(
            f"the host key of {host} (remote {name!r}) is not the one your known_hosts holds: "
            "either the cluster's administrators replaced it (confirm the new fingerprint with "
            f"them, then remove the old one: ssh-keygen -R <host name or [host]:port>) or "
            "something is between you and the cluster. Nothing was sent")
    if "Host key verification failed" in stderr or "host key is known for" in stderr:
        return RemoteError(
            f"the host key of {host} (remote {name!r}) is not known yet and there was no "
            f"terminal to ask you: check and accept it once with `ssh {host} true`, then run "
            "this again. Nothing was sent")
    if "Permission denied" in stderr or "Too many authentication failures" in stderr:
        return RemoteError(
            f"{host} refused the login (remote {name!r}): {_last(stderr, 1)}. Check that "
            f"`ssh {host} true` logs in: the user name (your ~/.ssh/config, or user@host in "
            f"remotes.{name}.ssh), your key (ssh-add -l) and that the cluster accepts it")
    return RemoteError(
        f"cannot reach {host} (remote {name!r}): {_last(stderr)}. Check the host name and "
        f"port (`ssh -G {host}` shows what ssh uses) and your network or VPN")


def _remote_side(remote: Remote, code: int, stderr: str) -> RemoteError:
    """The login worked; the cluster's Python or package did not."""
    host, name, python = remote.ssh, remote.name, remote.python
    install = f"ssh {host} {python} -m pip install '{PACKAGE}=={__version__}'"
    if code == 127 or (code == 126 and python in stderr):
        return RemoteError(f"the Python of remote {name!r} ({python}) cannot be run on {host}: "
                           f"{_last(stderr, 1)}; fix remotes.{name}.python in config.json")
    if re.search(r"No module named '?experiments\.remote", stderr):
        return RemoteError(f"the Python of remote {name!r} ({python}) has an experiments "
                           f"older than this one ({__version__}), without --on; install this "
                           f"version there: {install}")
    if re.search(r"No module named '?experiments'?", stderr):
        return RemoteError(f"the Python of remote {name!r} ({python}) has no experiments "
                           f"package; install it there: {install}")
    return RemoteError(f"the agent on {host} (remote {name!r}) stopped before answering "
                       f"(exit {code}): {_last(stderr, 3)}")


def version_mismatch(remote: Remote, theirs: str) -> RemoteError:
    """The cluster runs another version of the package than this laptop."""
    return RemoteError(
        f"the Python of remote {remote.name!r} ({remote.python}) has experiments {theirs}, this "
        f"laptop {__version__}; both sides must run the same version. Install it there: "
        f"ssh {remote.ssh} {remote.python} -m pip install '{PACKAGE}=={__version__}'")
