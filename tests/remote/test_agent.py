"""The cluster side of ``--on``, spoken to directly over pipes (the SSH tests cover the wire).

The agent is started as ssh starts it (``python -m experiments.remote.agent``); the requests
are made from a real code folder by the laptop's own ``ship.prepare``.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from experiments import __version__, _proc
from experiments.config import settings
from experiments.experiment import Experiment
from experiments.remote import protocol, ship

EXPERIMENT = '''
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, LocalExecutor, Task

@dataclass(frozen=True)
class Thing(Artifact):
    n: int

    def construct(self, builder: Task):
        builder.run_command("true")

executor = LocalExecutor(project="agenttest")
executor.stage("things", ArtifactSet.from_product(cls=Thing, params={"n": [1, 2]}))
'''


class Agent:
    """One agent process and the frames it sent."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "experiments.remote.agent"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        assert self.proc.stdout.readline() == protocol.AGENT_HELLO

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def frame(self) -> tuple[bytes, Any]:
        assert self.proc.stdout is not None
        kind, payload = protocol.read_frame(self.proc.stdout)
        return kind, protocol.unpack_json(payload) if kind in (b"R", b"X") else payload

    def until_exit(self) -> tuple[int, bytes]:
        """The verb's exit code and stdout, as the laptop reads them (still connected)."""
        out = b""
        while True:
            kind, payload = self.frame()
            if kind == b"X":
                assert self.finish()[0] == payload["code"]
                return payload["code"], out
            out += payload if kind == b"O" else b""

    def finish(self) -> tuple[int, bytes]:
        """Hang up; the exit code and everything else the agent sent."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        rest = self.proc.stdout.read()
        return self.proc.wait(timeout=60), rest


@pytest.fixture
def shipment(tmp_path: Path) -> tuple[ship.Shipment, dict[str, Any]]:
    code = tmp_path / "code"
    (code / "bin").mkdir(parents=True)
    (code / "exp.py").write_text(EXPERIMENT)
    (code / "bin" / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(code / "bin" / "run.sh", 0o755)
    (code / "link.sh").symlink_to("bin/run.sh")
    root = tmp_path / "cluster-code"
    root.mkdir()
    ex = Experiment(project="agenttest", artifact_path=str(tmp_path / "out"),
                    code_path=str(code), stages={}, source_file=str(code / "exp.py"))
    found = ship.prepare(ex, settings.load(), settings.home())
    request = {"protocol": protocol.PROTOCOL, "version": __version__, "project": "agenttest",
               "code_root": str(root), "tree": found.tree, "manifest": list(found.entries),
               "blobs": [], "git": None, "file": found.file,
               "artifact_path": str(tmp_path / "out"), "argv": ["history"], "fetch": None,
               "env": {}}
    return found, request


def _blobs(found: ship.Shipment, digests: list[str]) -> bytes:
    return b"".join(ship.blob_frames(found, digests))


def test_a_wrong_belief_costs_one_round_trip_then_the_verb_runs_in_the_tree(
        shipment: tuple[ship.Shipment, dict[str, Any]]) -> None:
    found, request = shipment
    agent = Agent()
    agent.send(protocol.pack_json(protocol.HEADER, request))
    kind, reply = agent.frame()
    assert kind == b"R" and sorted(reply["missing"]) == sorted(found.files)
    agent.send(protocol.pack_json(protocol.MORE, {"blobs": reply["missing"]})
               + _blobs(found, reply["missing"]))
    kind, reply = agent.frame()
    tree = Path(reply["ready"]["tree"])
    assert reply["ready"]["received"] == len(found.files) == 2
    assert (tree / "exp.py").read_text() == EXPERIMENT
    assert os.stat(tree / "bin" / "run.sh").st_mode & stat.S_IXUSR
    assert os.readlink(tree / "link.sh") == "bin/run.sh"
    assert tree.name == found.tree
    code, out = agent.until_exit()
    assert code == 0 and b"No jobs submitted yet" in out


def test_a_tree_the_cluster_has_needs_only_its_id_and_one_it_lacks_its_manifest(
        shipment: tuple[ship.Shipment, dict[str, Any]]) -> None:
    found, request = shipment
    agent = Agent()  # first: the tree's id only, on a cluster that never saw it
    agent.send(protocol.pack_json(protocol.HEADER, {**request, "manifest": None}))
    assert agent.frame() == (b"R", {"need_manifest": True})
    agent.send(protocol.pack_json(protocol.MORE, {"manifest": request["manifest"],
                                                  "blobs": list(found.files)})
               + _blobs(found, list(found.files)))
    assert "ready" in agent.frame()[1]
    assert agent.until_exit()[0] == 0
    again = Agent()
    again.send(protocol.pack_json(protocol.HEADER, {**request, "manifest": None}))
    assert again.frame()[1]["ready"]["received"] == 0
    assert again.until_exit()[0] == 0


def _refusal(request: dict[str, Any], extra: bytes = b"") -> dict[str, Any]:
    agent = Agent()
    agent.send(protocol.pack_json(protocol.HEADER, request) + extra)
    kind, reply = agent.frame()
    assert kind == b"R"
    assert agent.finish()[0] == 2
    return dict(reply)


def test_a_blob_that_is_not_what_its_digest_says_is_refused(
        shipment: tuple[ship.Shipment, dict[str, Any]]) -> None:
    found, request = shipment
    digest = next(iter(found.files))
    reply = _refusal({**request, "blobs": [digest]}, protocol.pack_blob(b"something else"))
    assert reply["error"] == "tree" and "has other content" in reply["message"]
    assert not list(Path(request["code_root"]).rglob(digest[2:]))


@pytest.mark.parametrize("path", ["../outside.py", "/etc/passwd", "a/./b", "a//b"])
def test_a_manifest_path_that_leaves_the_tree_is_refused(
        shipment: tuple[ship.Shipment, dict[str, Any]], path: str) -> None:
    found, request = shipment
    entries = [*request["manifest"], [path, "f", next(iter(found.files))]]
    reply = _refusal({**request, "manifest": entries})
    assert reply["error"] == "tree" and "not a path inside a tree" in reply["message"]


def test_a_manifest_that_does_not_hash_to_its_tree_id_is_refused(
        shipment: tuple[ship.Shipment, dict[str, Any]]) -> None:
    found, request = shipment
    entries = [e for e in request["manifest"] if e[0] != "link.sh"]
    agent_blobs = _blobs(found, list(found.files))
    reply = _refusal({**request, "manifest": entries, "blobs": list(found.files)}, agent_blobs)
    assert reply["error"] == "tree" and "does not hash to that id" in reply["message"]


def test_another_version_or_a_missing_code_root_is_refused_before_anything_is_stored(
        shipment: tuple[ship.Shipment, dict[str, Any]], tmp_path: Path) -> None:
    _found, request = shipment
    assert _refusal({**request, "version": "0.0.1"}) == {"error": "version",
                                                        "version": __version__}
    assert _refusal({**request, "code_root": str(tmp_path / "nope")}) == {
        "error": "no_code_root"}
    os.chmod(request["code_root"], 0o777)  # a lab-mate could plant a tree there
    assert _refusal(request) == {"error": "code_root_shared"}


def test_when_the_laptop_hangs_up_the_verb_is_stopped_and_the_agent_exits(
        shipment: tuple[ship.Shipment, dict[str, Any]]) -> None:
    found, request = shipment
    agent = Agent()
    agent.send(protocol.pack_json(protocol.HEADER, {
        **request, "argv": ["serve", "--port", "0"], "blobs": list(found.files)})
               + _blobs(found, list(found.files)))
    tree = agent.frame()[1]["ready"]["tree"]
    out = b""
    while b"Serving the report" not in out:
        kind, payload = agent.frame()
        out += payload if kind == b"O" else b""
    assert b"?token=" in out  # a login node's loopback is shared: the token is required
    assert _proc.processes_with_arg(tree)  # the server runs in the tree
    code, _rest = agent.finish()
    assert code == 130
    deadline = time.monotonic() + 30
    while _proc.processes_with_arg(tree):
        assert time.monotonic() < deadline, "the verb outlived the agent"
        time.sleep(0.05)
