"""The laptop's end of a verb running on the cluster: its output here, as it comes.

Stdout and stderr frames go to this terminal unchanged; the report's page (``F``) is written
to the file named here (``report --on -o r.html``); for ``serve --on``, the server's address
on the cluster's loopback is forwarded to a port here through the same SSH master, and its
token kept, before its "Serving ... at URL" line is shown with the local address.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from .. import _atomic
from . import protocol, ssh
from .command import Command
from .ssh import Channel, RemoteError

_URL = re.compile(rb"http://127\.0\.0\.1:(\d+)/(\S*)")


class Relay:
    """Relays one verb's frames; ``run`` returns its exit code on the cluster."""

    def __init__(self, channel: Channel, cmd: Command, ready: dict[str, Any]) -> None:
        """The channel after the agent's ``ready`` reply (which names the fetched file)."""
        self.channel = channel
        self.cmd = cmd
        self.fetched = str(ready.get("fetch") or "").encode()
        self._line = b""  # serve: output held until the URL line is seen
        self._forward: tuple[str, int, int] | None = None

    def run(self) -> int:
        """Relay until the agent sends the exit code; stop forwarding at the end."""
        try:
            while True:
                kind, payload = self.channel.frame()
                if kind == protocol.EXIT:
                    return int(protocol.unpack_json(payload)["code"])
                self._one(kind, payload)
        except KeyboardInterrupt:
            if self.cmd.serve_at is None:
                raise
            return 0  # Ctrl-C is how serving ends, here as on the cluster
        finally:
            if self._forward is not None:
                ssh.cancel_forward(self.channel.remote, self.channel.control, *self._forward)

    def _one(self, kind: bytes, payload: bytes) -> None:
        """One frame of the verb's output (stdout, stderr, the report's page)."""
        if kind == protocol.OUT:
            self._stdout(payload)
        elif kind == protocol.ERR:
            _write(sys.stderr.buffer, payload)
        elif kind == protocol.FILE and self.cmd.output:
            _atomic.write_bytes(self.cmd.output, payload, durable=False)
        else:
            raise RemoteError(f"the agent on {self.channel.remote.ssh} sent an unexpected "
                              f"{kind!r} frame")

    def _stdout(self, data: bytes) -> None:
        """Stdout here; for serve, held until the URL line is seen and forwarded."""
        if self.fetched and self.cmd.output:  # the page's path there is the file here
            data = data.replace(self.fetched, self.cmd.output.encode())
        if self.cmd.serve_at is None or self._forward is not None:
            _write(sys.stdout.buffer, data)
            return
        self._line += data
        found = _URL.search(self._line)
        if found is None:
            return
        host, port = self.cmd.serve_at
        port = port or ssh.free_port(host)
        remote_port = int(found.group(1))
        ssh.forward(self.channel.remote, self.channel.control, host, port, remote_port)
        self._forward = (host, port, remote_port)
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}/".encode() + found.group(2)
        _write(sys.stdout.buffer, self._line[:found.start()] + url + self._line[found.end():])
        self._line = b""


def _write(stream: Any, data: bytes) -> None:
    """Write and flush at once: the output is shown as it comes."""
    stream.write(data)
    stream.flush()
