"""Fixtures of the unit tests: a private EXPERIMENTS_HOME per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments import backends
from experiments.backends.fake import FakeBackend


@pytest.fixture(autouse=True)
def exp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every unit test gets its own experiments home, so none touches ~/.experiments."""
    home = tmp_path / "exphome"
    monkeypatch.setenv("EXPERIMENTS_HOME", str(home))
    monkeypatch.setenv("EXPERIMENTS_SITE_CONFIG", "")  # no site file unless a test writes one
    monkeypatch.delenv("EXPERIMENTS_CRASH_AT", raising=False)
    return home


@pytest.fixture
def fake() -> Iterator[FakeBackend]:
    """A FakeBackend registered as the "fake" backend for this test (then the factory is put
    back), so executors whose default_backend is "fake" and the CLI reach it by name."""
    backend = FakeBackend()
    previous = backends.register("fake", lambda options: backend)
    yield backend
    assert previous is not None
    backends.register("fake", previous)
