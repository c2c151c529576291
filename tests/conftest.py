"""Shared fixtures: every test gets its own experiments home (not created yet, as for a new user)
and may ask for ``fake``, a FakeBackend registered by name; the Slurm clusters and the GCS
emulator are plugins from tests/support."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments import backends
from experiments.backends.fake import FakeBackend

pytest_plugins = ["tests.support.slurm_cluster", "tests.support.gcs", "tests.support.sshd"]


@pytest.fixture(autouse=True)
def experiments_home(tmp_path_factory: pytest.TempPathFactory,
                     monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private experiments home per test, outside ``tmp_path`` (so no code snapshot or search
    of the test's folder sees it) and not created yet; no test touches ~/.experiments."""
    home = tmp_path_factory.mktemp("exphome") / "home"
    monkeypatch.setenv("EXPERIMENTS_HOME", str(home))
    monkeypatch.setenv("EXPERIMENTS_SITE_CONFIG", "")  # no site file unless a test writes one
    monkeypatch.delenv("EXPERIMENTS_CRASH_AT", raising=False)
    return home


@pytest.fixture
def exp_home(experiments_home: Path) -> Path:
    """The same home as ``experiments_home``, by its shorter name."""
    return experiments_home


@pytest.fixture
def fake() -> Iterator[FakeBackend]:
    """A FakeBackend registered as the "fake" backend for this test (then the factory is put
    back), so executors whose default_backend is "fake" and the CLI reach it by name."""
    backend = FakeBackend()
    previous = backends.register("fake", lambda options: backend)
    yield backend
    assert previous is not None
    backends.register("fake", previous)


@pytest.fixture
def repo_root() -> Path:
    """The repository's root folder."""
    return Path(__file__).resolve().parent.parent


def pytest_report_header(config: pytest.Config) -> str:
    """Say where the tests' homes are and which Slurm cluster the environment names."""
    return f"EXPERIMENTS_HOME per test; SLURM_CONF={os.environ.get('SLURM_CONF', '(unset)')}"
