"""The laptop side of shipping code by content: the manifest, and what each cluster holds.

The manifest is the code tree exactly as a launch's snapshot would freeze it
(:func:`~experiments.launching.snapshots.describe`: the same files, excludes, size limit and
git state), and its id is that snapshot's id. ``<home>/remotes/<name>.json`` records the blobs
and trees the cluster confirmed it holds, so a request carries only the blobs it lacks, and
only the manifest's id once the cluster has the tree. A wrong belief (a cluster cleaned up, a
record lost) costs one more round trip, never a wrong tree: the agent checks every blob.
On first contact nothing is believed either way: the agent is asked what it lacks.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _atomic, paths
from ..config.remotes import Remote
from ..config.settings import Config
from ..errors import ExperimentsError, SnapshotError
from ..experiment import Experiment
from ..launching import snapshots
from ..launching.snapshot_files import LINK
from . import protocol

MAX_BLOBS = 200_000  # digests remembered per remote (the oldest are forgotten first)
MAX_TREES = 200


@dataclass(frozen=True)
class Shipment:
    """The code tree to ship: its id, manifest entries, and where each blob is read from."""

    tree: str
    entries: tuple[tuple[str, str, str], ...]  # (relative path, kind, digest or link target)
    files: dict[str, tuple[str, int]]  # digest -> (path here, size)
    git: dict[str, Any] | None
    file: str  # the experiment file, relative to the tree
    code: str

    @property
    def bytes(self) -> int:
        """The size of all files of the tree."""
        return sum(size for _path, size in self.files.values())


def prepare(experiment: Experiment, config: Config, home: Path) -> Shipment:
    """Hash the experiment's code tree as a launch would snapshot it (nothing is copied)."""
    if not experiment.source_file:
        raise ExperimentsError("--on needs the experiment file: run it as `python "
                               "my_experiment.py <verb> --on NAME` or `experiments --file "
                               "my_experiment.py <verb> --on NAME`")
    settings = config.snapshots
    never = [experiment.artifact_path, str(home), str(paths.snapshots_dir(home)),
             str(config.log_directory)]
    try:
        found = snapshots.describe(
            experiment.code_path, never_copy=never,
            excludes=snapshots.DEFAULT_EXCLUDES if settings.excludes is None else settings.excludes,
            max_bytes=settings.max_bytes or snapshots.DEFAULT_MAX_BYTES)
    except SnapshotError as exc:
        raise SnapshotError(f"{exc}. --on ships this tree to the cluster; nothing was sent"
                            ) from None
    rel = _inside(experiment.source_file, found.code, experiment.code_path)
    entries = tuple((e.rel, e.kind, e.target if e.kind == LINK else found.digests[e.rel])
                    for e in found.entries)
    if rel not in {e[0] for e in entries}:
        raise ExperimentsError(f"the experiment file {experiment.source_file} is left out of "
                               "the code snapshot (git-ignored, or matched by the snapshot "
                               "excludes), so --on could not run it on the cluster; include it")
    files = {found.digests[e.rel]: (os.path.join(found.code, e.rel), e.size)
             for e in found.entries if e.kind != LINK}
    git = None if found.git is None else dict(found.git.__dict__)
    return Shipment(found.id, entries, files, git, rel, found.code)


def _inside(source: str, code: str, given: str) -> str:
    """The experiment file relative to the code tree; an error when it lies outside."""
    real = os.path.realpath(source)
    if os.path.commonpath([code, real]) != code:
        raise ExperimentsError(
            f"the experiment file {source} lies outside its code_path {given}; --on ships "
            "code_path to the cluster, so the file must be inside it (move it there, or pass "
            "--code-path to a folder that holds both)")
    return os.path.relpath(real, code).replace(os.sep, "/")


@dataclass
class Record:
    """What one cluster is known to hold, as it confirmed (read and written on the laptop);
    ``base`` is the last tree shipped there with its manifest, for sending only changes."""

    path: Path
    ssh: str
    code_root: str
    blobs: dict[str, None] = field(default_factory=dict)  # ordered: oldest first
    trees: list[str] = field(default_factory=list)
    base: tuple[str, list[list[str]]] | None = None

    @classmethod
    def load(cls, home: Path, remote: Remote) -> Record:
        """The record of ``remote``; empty when none, unreadable, or made for another host
        or code root (the config changed)."""
        path = home / "remotes" / f"{remote.name}.json"
        empty = cls(path, remote.ssh, remote.code_root)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return empty
        if not isinstance(data, dict) or (data.get("ssh"), data.get("code_root")) != (
                remote.ssh, remote.code_root):
            return empty
        blobs = [d for d in data.get("blobs", []) if isinstance(d, str)]
        trees = [t for t in data.get("trees", []) if isinstance(t, str)]
        base = data.get("base")
        known = (base["tree"], base["entries"]) if isinstance(base, dict) and isinstance(
            base.get("tree"), str) and isinstance(base.get("entries"), list) else None
        return cls(path, remote.ssh, remote.code_root, dict.fromkeys(blobs), trees, known)

    @property
    def first_contact(self) -> bool:
        """True when nothing is known about the cluster (never talked, or config changed)."""
        return not self.blobs and not self.trees

    def learn(self, shipment: Shipment) -> None:
        """The cluster holds every blob of ``shipment`` and its tree now."""
        for digest in shipment.files:
            self.blobs.pop(digest, None)
            self.blobs[digest] = None
        while len(self.blobs) > MAX_BLOBS:
            del self.blobs[next(iter(self.blobs))]
        self.trees = [t for t in self.trees if t != shipment.tree][-(MAX_TREES - 1):]
        self.trees.append(shipment.tree)
        self.base = (shipment.tree, [list(e) for e in shipment.entries])

    def delta(self, shipment: Shipment) -> dict[str, Any] | None:
        """``shipment``'s manifest as changes to the last tree the cluster confirmed (None
        when there is none): what one edited file costs is that file's entry."""
        if self.base is None or self.base[0] not in self.trees:
            return None
        old = {e[0]: tuple(e) for e in self.base[1] if len(e) == 3}
        new = {e[0]: e for e in shipment.entries}
        return {"base": self.base[0],
                "set": [list(e) for rel, e in new.items() if old.get(rel) != e],
                "drop": [rel for rel in old if rel not in new]}

    def forget(self, digests: Sequence[str]) -> None:
        """The cluster said it lacks these."""
        for digest in digests:
            self.blobs.pop(digest, None)

    def save(self) -> None:
        """Write the record (private to the user; a lost write costs one round trip)."""
        data = {"ssh": self.ssh, "code_root": self.code_root, "blobs": list(self.blobs),
                "trees": self.trees,
                "base": None if self.base is None else {"tree": self.base[0],
                                                        "entries": self.base[1]}}
        _atomic.write_json(str(self.path), data, mode=0o600, indent=None, durable=False)


@dataclass(frozen=True)
class Plan:
    """What the first request carries: the whole manifest, changes to a tree the cluster
    has, or neither (it has this tree); and the blobs believed missing there."""

    manifest: list[list[str]] | None
    delta: dict[str, Any] | None
    blobs: list[str]


def first_request(shipment: Shipment, record: Record) -> Plan:
    """The first request's content, from what the cluster is known to hold."""
    whole = [list(e) for e in shipment.entries]
    if shipment.tree in record.trees:
        return Plan(None, None, [])  # the cluster has the tree: its id is enough
    if record.first_contact:
        return Plan(whole, None, [])  # nothing known: let the agent say what it lacks
    delta = record.delta(shipment)
    return Plan(None if delta else whole, delta,
                [d for d in shipment.files if d not in record.blobs])


def blob_frames(shipment: Shipment, digests: Sequence[str]) -> Iterator[bytes]:
    """One ``B`` frame per digest, read now and checked against the manifest."""
    for digest in digests:
        path, _size = shipment.files[digest]
        try:
            with open(path, "rb") as fh:
                content = fh.read()
        except OSError as exc:
            raise ExperimentsError(f"cannot read {path} to send it: {exc.strerror}") from None
        if hashlib.sha256(content).hexdigest() != digest:
            raise ExperimentsError(f"{path} changed while the code was being sent; run the "
                                   "command again")
        yield protocol.pack_blob(content)
