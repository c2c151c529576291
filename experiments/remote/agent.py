"""The cluster side of ``--on``: ``<python> -m experiments.remote.agent``, started by ssh.

One run serves one command: it reads the laptop's request, stores the blobs it did not have
(asking for the ones the laptop wrongly thought it had), builds the code tree, and runs the
verb there as ``python -m experiments --file <tree>/<file> --artifact-path <root>
--code-path <tree> <verb> ...`` with the laptop's git state, relaying its output and exit
code. When the laptop goes away (its end of the connection closes) the verb is stopped and
the agent exits: nothing of ours stays on the login node. A launch stopped so is completed by
running it again, like one interrupted at the login node (the launch journal is here).
"""

from __future__ import annotations

import os
import selectors
import sys
import tempfile
from typing import IO, Any

from .. import __version__, _proc
from ..config import settings
from ..errors import ExperimentsError
from ..launching import shipped
from . import protocol, tree
from .protocol import REPLY, ProtocolError

GRACE_S = 5.0
_GONE, _OUT, _ERR = "gone", "out", "err"


class LaptopGone(Exception):
    """The laptop's end of the connection closed."""


class Agent:
    """One request: its streams, the code root, and what it received."""

    def __init__(self, inp: IO[bytes], out: IO[bytes]) -> None:
        """The channel's two ends (stdin, stdout); nothing received yet."""
        self.inp, self.out = inp, out
        self.received = 0
        self.received_bytes = 0
        self.root = ""

    def send(self, data: bytes) -> None:
        """Write to the laptop; its end closed raises ``LaptopGone``."""
        try:
            self.out.write(data)
            self.out.flush()
        except (BrokenPipeError, ValueError, OSError):
            raise LaptopGone() from None

    def reply(self, **message: Any) -> None:
        """Send an ``R`` frame holding ``message``."""
        self.send(protocol.pack_json(REPLY, message))

    def message(self, kind: bytes) -> Any:
        """The next frame, which must be of ``kind``, as JSON."""
        got, payload = protocol.read_frame(self.inp)
        if got != kind:
            raise ProtocolError(f"expected a {kind!r} frame, got {got!r}")
        return protocol.unpack_json(payload)

    def blobs(self, digests: list[str]) -> None:
        """Receive one ``B`` frame per digest and store each."""
        for digest in digests:
            got, payload = protocol.read_frame(self.inp)
            if got != protocol.BLOB:
                raise ProtocolError(f"expected a blob, got a {got!r} frame")
            content = protocol.unpack_blob(payload)
            tree.put(self.root, digest, content)
            self.received += 1
            self.received_bytes += len(payload)


def _problem(req: dict[str, Any]) -> dict[str, Any] | None:
    """Why this request cannot be served here, as a reply (None: it can)."""
    if req.get("protocol") != protocol.PROTOCOL or req.get("version") != __version__:
        return {"error": "version", "version": __version__}
    root = req["code_root"]
    try:
        st = os.stat(root)
    except OSError:
        return {"error": "no_code_root"}
    if not os.path.isdir(root):
        return {"error": "no_code_root"}
    if st.st_uid != os.getuid():
        return {"error": "code_root_not_ours"}
    if st.st_mode & 0o022:  # a lab-mate could plant a tree: the code the jobs would run
        return {"error": "code_root_shared"}
    if not os.access(root, os.W_OK | os.X_OK):
        return {"error": "code_root_unwritable"}
    return None


def _tree(agent: Agent, req: dict[str, Any]) -> str:
    """Receive what is missing and build the tree: at most two more messages."""
    agent.blobs(req.get("blobs", []))
    dest = tree.tree_dir(agent.root, req["project"], req["tree"])
    if os.path.isdir(dest):
        return tree.build(agent.root, req["project"], req["tree"], [])
    entries = req.get("manifest")
    if entries is None and req.get("delta"):
        entries = tree.from_delta(agent.root, req["project"], req["delta"])
    if entries is None:
        agent.reply(need_manifest=True)
        more = agent.message(protocol.MORE)
        entries = more["manifest"]
        agent.blobs(more.get("blobs", []))
    lacking = tree.missing(agent.root, tree.file_digests(entries))
    if lacking:
        agent.reply(missing=lacking)
        agent.blobs(agent.message(protocol.MORE)["blobs"])
        still = tree.missing(agent.root, lacking)
        if still:
            raise tree.TreeError(f"{len(still)} blob(s) asked for were not sent")
    return tree.build(agent.root, req["project"], req["tree"], entries)


def _verb_argv(req: dict[str, Any], code: str, fetch: str | None) -> list[str]:
    """The verb as the cluster runs it: the tree's experiment file, the remote's artifact root."""
    argv = [sys.executable, "-m", "experiments", "--file", os.path.join(code, req["file"]),
            "--artifact-path", req["artifact_path"], "--code-path", code, *req["argv"]]
    return [*argv, "-o", fetch] if fetch else argv


def _env(req: dict[str, Any], code: str) -> dict[str, str]:
    """The verb's environment: the shipment it runs from, the laptop's terminal width and colour."""
    source = os.path.join(req["code_root"], req["project"], req["file"])
    env = {**os.environ, shipped.ENV: shipped.encode(code, source, req.get("git"))}
    for key, value in req.get("env", {}).items():
        if key in ("COLUMNS", "FORCE_COLOR", "NO_COLOR", "TERM"):
            env[key] = str(value)
    return env


def relay(agent: Agent, child: _proc.Child) -> int | None:
    """Send the verb's output as it comes; its exit code, or None when the laptop left (the
    verb is stopped then)."""
    popen = child.popen
    assert popen.stdout is not None and popen.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(popen.stdout, selectors.EVENT_READ, _OUT)
    sel.register(popen.stderr, selectors.EVENT_READ, _ERR)
    sel.register(agent.inp.fileno(), selectors.EVENT_READ, _GONE)
    open_pipes = 2
    try:
        while open_pipes:
            for key, _ in sel.select():
                data = os.read(key.fd, 1 << 16)
                if key.data == _GONE:
                    if not data:
                        raise LaptopGone()
                    continue  # nothing more is expected from the laptop: ignore it
                if not data:
                    sel.unregister(key.fileobj)
                    open_pipes -= 1
                    continue
                agent.send(protocol.frame(protocol.OUT if key.data == _OUT else protocol.ERR,
                                          data))
    except LaptopGone:
        child.terminate(GRACE_S)
        return None
    finally:
        sel.close()
    return popen.wait()


def _run_verb(agent: Agent, req: dict[str, Any], code: str) -> int | None:
    """Run the verb in ``code``; send back the file it wrote for the laptop (report)."""
    with tempfile.TemporaryDirectory(prefix="experiments-on-") as tmp:
        fetch = os.path.join(tmp, os.path.basename(req["fetch"])) if req.get("fetch") else None
        agent.reply(ready={"tree": code, "received": agent.received,
                           "received_bytes": agent.received_bytes, "fetch": fetch})
        child = _proc.spawn_captured(_verb_argv(req, code, fetch),
                                     cwd=os.path.dirname(os.path.join(code, req["file"])),
                                     env=_env(req, code))
        status = relay(agent, child)
        if status is not None and fetch and os.path.isfile(fetch):
            with open(fetch, "rb") as fh:
                agent.send(protocol.frame(protocol.FILE, fh.read()))
    return status


def serve(inp: IO[bytes], out: IO[bytes]) -> int:
    """Answer one request on ``inp``/``out``; the exit code the laptop should see."""
    agent = Agent(inp, out)
    agent.send(protocol.AGENT_HELLO)
    req = agent.message(protocol.HEADER)
    problem = _problem(req)
    if problem is not None:
        agent.reply(**problem)
        return 2
    try:
        os.umask(settings.load().umask)
    except ExperimentsError as exc:  # the cluster's own config.json is broken
        agent.reply(error="cluster", message=str(exc))
        return 2
    agent.root = req["code_root"]
    try:
        code = _tree(agent, req)
    except (tree.TreeError, OSError) as exc:
        agent.reply(error="tree", message=str(exc))
        return 2
    status = _run_verb(agent, req, code)
    if status is None:
        return 130
    agent.send(protocol.pack_json(protocol.EXIT, {"code": status}))
    return status


def main() -> int:
    """Entry point: stdin/stdout are the SSH channel."""
    try:
        return serve(sys.stdin.buffer, sys.stdout.buffer)
    except (LaptopGone, ProtocolError):
        return 130


if __name__ == "__main__":
    sys.exit(main())
