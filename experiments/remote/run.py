"""The laptop side of ``--on NAME``: ship the code, run the verb on the cluster, relay it.

One SSH session per command (through OpenSSH's master, so one login per sitting), carrying
one request: the verb, the code tree's manifest (or only its id when the cluster has the
tree) and the blobs the cluster lacks. The agent answers with the verb's output and exit code;
only a wrong belief about what the cluster holds costs a further round trip. Each command
appends one line to ``<home>/remotes/<name>.log``: round trips, bytes, files sent.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import __version__, _atomic
from ..config import remotes, settings
from ..experiment import Experiment
from . import protocol, ssh
from .command import Command, parse
from .forward import Relay
from .ship import Plan, Record, Shipment, blob_frames, first_request, prepare
from .ssh import Channel, RemoteError

_LOG_LIMIT = 1 << 20


def run(experiment: Experiment, name: str, args: Sequence[str]) -> int:
    """Run the command ``args`` (``--on`` taken out) of ``experiment`` on the remote ``name``;
    returns the exit code the verb had there."""
    cmd = parse(name, args)
    config = settings.load()
    remote = remotes.find(config.remotes, name, config.path)
    home = settings.home()
    shipment = prepare(experiment.with_paths(None, cmd.code_path), config, home)
    record = Record.load(home, remote)
    started = time.monotonic()
    channel = Channel(remote, ssh.control_dir(home))
    stats: dict[str, Any] = {"verb": cmd.verb, "round_trips": 1}
    try:
        ready = _ship(channel, cmd, experiment, shipment, record, stats)
        code = Relay(channel, cmd, ready).run()
    finally:
        channel.close()
        stats.update(sent_bytes=channel.sent, received_bytes=channel.received,
                     seconds=round(time.monotonic() - started, 3))
        _log(home, remote.name, stats)
    return code


def _request(cmd: Command, experiment: Experiment, shipment: Shipment, remote: remotes.Remote,
             plan: Plan) -> dict[str, Any]:
    """The request header (see :mod:`experiments.remote.protocol`)."""
    return {"protocol": protocol.PROTOCOL, "version": __version__,
            "project": experiment.project, "code_root": remote.code_root,
            "tree": shipment.tree, "manifest": plan.manifest, "delta": plan.delta,
            "blobs": plan.blobs, "git": shipment.git, "file": shipment.file,
            "artifact_path": cmd.artifact_path or remote.artifact_path,
            "argv": list(cmd.argv), "fetch": cmd.output, "env": _terminal()}


def _terminal() -> dict[str, str]:
    """How the cluster should render for this terminal (width, colour)."""
    env = {"COLUMNS": str(shutil.get_terminal_size().columns)}
    if sys.stdout.isatty() and "NO_COLOR" not in os.environ:
        env.update(FORCE_COLOR="1", TERM=os.environ.get("TERM", "xterm-256color"))
    if "NO_COLOR" in os.environ:
        env["NO_COLOR"] = os.environ["NO_COLOR"]
    return env


def _ship(channel: Channel, cmd: Command, experiment: Experiment, shipment: Shipment,
          record: Record, stats: dict[str, Any]) -> dict[str, Any]:
    """Send the request and whatever the agent asks for; the agent's ``ready`` reply."""
    plan = first_request(shipment, record)
    request = _request(cmd, experiment, shipment, channel.remote, plan)
    channel.send(protocol.pack_json(protocol.HEADER, request))
    _send_blobs(channel, shipment, plan.blobs, stats)
    junk = channel.hello()
    if junk.strip():
        sys.stderr.write(f"note: the login scripts of {channel.remote.ssh} printed: "
                         f"{junk.decode('utf-8', 'replace').strip()[:300]}\n")
    while True:
        kind, payload = channel.frame()
        if kind != protocol.REPLY:
            raise RemoteError(f"the agent on {channel.remote.ssh} answered out of turn "
                              f"({kind!r})")
        reply = protocol.unpack_json(payload)
        if "ready" in reply:
            break
        stats["round_trips"] += 1
        _answer(channel, reply, shipment, record, stats)
    record.learn(shipment)
    record.save()
    _say_sent(channel.remote, shipment, reply["ready"], stats)
    return dict(reply["ready"])


def _send_blobs(channel: Channel, shipment: Shipment, digests: Sequence[str],
                stats: dict[str, Any]) -> None:
    """Send the blobs ``digests``, counting files and bytes in ``stats``."""
    for data in blob_frames(shipment, digests):
        channel.send(data)
    stats["files_sent"] = stats.get("files_sent", 0) + len(digests)
    stats["file_bytes"] = stats.get("file_bytes", 0) + sum(
        shipment.files[d][1] for d in digests)


def _answer(channel: Channel, reply: dict[str, Any], shipment: Shipment, record: Record,
            stats: dict[str, Any]) -> None:
    """Send what the agent asked for, or raise the problem it reported."""
    remote = channel.remote
    if "error" in reply:
        raise _refusal(remote, reply)
    if reply.get("need_manifest"):
        record.trees = [t for t in record.trees if t != shipment.tree]
        blobs = [d for d in shipment.files if d not in record.blobs]
        more: dict[str, Any] = {"manifest": list(shipment.entries), "blobs": blobs}
    else:
        blobs = [d for d in reply["missing"] if d in shipment.files]
        record.forget(blobs)
        more = {"blobs": blobs}
    channel.send(protocol.pack_json(protocol.MORE, more))
    _send_blobs(channel, shipment, blobs, stats)


def _refusal(remote: remotes.Remote, reply: dict[str, Any]) -> RemoteError:
    """The agent's reason for not running the command, as one message saying what to do."""
    kind, root, host = reply["error"], remote.code_root, remote.ssh
    fix = f"or fix remotes.{remote.name}.code_root in config.json"
    if kind == "version":
        return ssh.version_mismatch(remote, str(reply.get("version")))
    if kind == "no_code_root":
        return RemoteError(f"code_root {root} does not exist on {host} (remote "
                           f"{remote.name!r}); create it there (ssh {host} mkdir -p {root}) "
                           f"{fix}")
    if kind == "code_root_not_ours":
        return RemoteError(f"code_root {root} on {host} belongs to another user; use a folder "
                           f"of yours ({fix.removeprefix('or ')})")
    if kind == "code_root_shared":
        return RemoteError(f"code_root {root} on {host} is writable by other users, who could "
                           f"change the code your jobs run; chmod go-w it {fix}")
    if kind == "code_root_unwritable":
        return RemoteError(f"code_root {root} on {host} is not writable for you; chmod u+w it "
                           f"{fix}")
    return RemoteError(f"the agent on {host} (remote {remote.name!r}) refused: "
                       f"{reply.get('message', kind)}")


def _say_sent(remote: remotes.Remote, shipment: Shipment, ready: dict[str, Any],
              stats: dict[str, Any]) -> None:
    """One line on stderr when code went over the wire (nothing when the cluster had it)."""
    stats.update(received=ready.get("received", 0), tree=shipment.tree)
    if ready.get("received"):
        kb = ready.get("received_bytes", 0) / 1000
        sys.stderr.write(f"Sent {ready['received']} of {len(shipment.files)} file(s) of the "
                         f"code to {remote.name} ({kb:,.1f} kB compressed).\n")
        sys.stderr.flush()


def _log(home: Path, name: str, stats: dict[str, Any]) -> None:
    """Append this command's figures to ``<home>/remotes/<name>.log`` (started over past 1 MB)."""
    path = home / "remotes" / f"{name}.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.exists() and path.stat().st_size > _LOG_LIMIT:
            _atomic.write_bytes(str(path), b"", mode=0o600, durable=False)
        line = json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **stats})
        with open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a") as fh:
            fh.write(line + "\n")
    except OSError:
        pass  # figures are a courtesy; never fail a command over them
