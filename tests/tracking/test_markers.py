"""DoneIndex: the same answers as one stat per artifact, with one listing per folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from experiments.tracking.markers import DoneIndex
from experiments.tracking.status import is_built


def _make(root: Path, relpath: str, done: bool) -> None:
    (root / relpath).mkdir(parents=True, exist_ok=True)
    if done:
        (root / relpath / ".done").write_text("{}")


def test_answers_like_a_stat_per_artifact(tmp_path: Path) -> None:
    _make(tmp_path, "A/x-1", True)
    _make(tmp_path, "A/y-2", False)
    _make(tmp_path, "deep/B/z-3", True)
    (tmp_path / "file").write_text("not a folder")
    index = DoneIndex(str(tmp_path))
    for rel in ("A/x-1", "A/y-2", "A/nope", "deep/B/z-3", "deep/B/w", "C/none", "file/x",
                "top"):
        assert index(rel) == is_built(str(tmp_path), rel), rel


def test_lists_each_folder_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(50):
        _make(tmp_path, f"A/a{i}", i % 2 == 0)
    calls: list[str] = []
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: calls.append(p) or real(p))
    index = DoneIndex(str(tmp_path))
    assert sum(index(f"A/a{i}") for i in range(50)) == 25
    assert not any(index(f"B/b{i}") for i in range(50))
    assert calls == [str(tmp_path / "A"), str(tmp_path / "B")]


def test_an_unreadable_folder_falls_back_to_a_stat_each(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    _make(tmp_path, "A/x", True)

    def refuse(path: str) -> list[str]:
        raise PermissionError(path)

    monkeypatch.setattr(os, "listdir", refuse)
    assert DoneIndex(str(tmp_path))("A/x")


def test_exists_answers_like_a_stat_whoever_owns_the_marker(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """Staleness asks whether a marker exists at all; trust is the planner's question."""
    _make(tmp_path, "A/x-1", True)
    _make(tmp_path, "A/y-2", False)
    monkeypatch.setattr(os, "geteuid", lambda: 12345)  # the marker is now someone else's
    index = DoneIndex(str(tmp_path))
    assert index.exists("A/x-1") and not index("A/x-1")
    assert not index.exists("A/y-2") and not index.exists("B/z") and not index.exists("A/nope")
    assert index.has_folder("A/y-2") and not index.has_folder("A/nope")
