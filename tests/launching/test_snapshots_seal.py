"""Snapshots are read-only to the commands that run in them (issue 24 item 10): sealed when
taken (and when an older, writable one is reused), still removable by ``gc``, and a relative
write by an ordinary account fails at once."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.launching import snapshots


def _modes(root: Path) -> dict[str, int]:
    out = {".": root.lstat().st_mode}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(top, name)
            out[str(p.relative_to(root))] = p.lstat().st_mode
    return out


@pytest.fixture
def code(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "train.py").write_text("print(1)\n")
    (code / "pkg" / "run.sh").write_text("#!/bin/sh\n")
    (code / "pkg" / "run.sh").chmod(0o755)
    (code / "data").symlink_to(tmp_path)
    return code


@pytest.fixture
def store() -> Iterator[Path]:
    """A store any account can reach (an ordinary account runs the write below)."""
    path = Path(tempfile.mkdtemp(prefix="exp-seal-"))
    path.chmod(0o755)
    yield path
    snapshots.remove_tree(str(path))


def test_a_snapshot_is_sealed_when_taken(code: Path, store: Path) -> None:
    snap = snapshots.take(str(code), str(store))
    modes = _modes(Path(snap.path))
    assert sorted(modes) == [".", "data", "pkg", "pkg/run.sh", "train.py"]
    for rel, mode in modes.items():
        assert stat.S_ISLNK(mode) or not mode & 0o222, rel
    assert modes["pkg/run.sh"] & 0o100 and not modes["train.py"] & 0o111
    assert os.access(Path(snap.path).parent, os.W_OK)  # beside it: pycache, snapshot.json


def test_an_older_writable_snapshot_is_sealed_when_reused(code: Path, store: Path) -> None:
    snap = snapshots.take(str(code), str(store))
    for top, _dirs, files in os.walk(snap.path):  # as snapshots were before sealing
        os.chmod(top, 0o755)
        for f in files:
            os.chmod(os.path.join(top, f), 0o644)
    again = snapshots.take(str(code), str(store))
    assert again.reused and again.path == snap.path
    assert not any(m & 0o222 for m in _modes(Path(snap.path)).values()
                   if not stat.S_ISLNK(m))


def test_gc_removes_a_sealed_snapshot(code: Path, store: Path) -> None:
    snap = snapshots.take(str(code), str(store))
    result = snapshots.gc(str(store), in_use=(), older_than_s=-1)
    assert [r.id for r in result.removed] == [snap.id]
    assert os.listdir(store) == []


def test_an_ordinary_account_cannot_write_into_a_snapshot(code: Path, store: Path) -> None:
    snap = snapshots.take(str(code), str(store))
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] \
        if os.geteuid() == 0 else []
    for write in ("echo x > metrics.json", "echo x >> train.py", "mkdir out"):
        res = subprocess.run([*as_nobody, "/bin/bash", "-c", write], cwd=snap.path,
                             capture_output=True, text=True, timeout=30)
        assert res.returncode != 0 and "Permission denied" in res.stderr, (write, res)
    assert sorted(os.listdir(snap.path)) == ["data", "pkg", "train.py"]
    assert (Path(snap.path) / "train.py").read_text() == "print(1)\n"
