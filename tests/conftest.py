"""Shared fixtures: every test gets its own EXPERIMENTS_HOME; Slurm and GCS fixtures are plugins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests._slurm", "tests._gcs", "tests._sshd"]


@pytest.fixture(autouse=True)
def experiments_home(tmp_path_factory: pytest.TempPathFactory,
                     monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private experiments home per test, so no test touches ~/.experiments."""
    home = tmp_path_factory.mktemp("exphome")
    monkeypatch.setenv("EXPERIMENTS_HOME", str(home))
    monkeypatch.setenv("EXPERIMENTS_SITE_CONFIG", "")  # no site file unless a test writes one
    return home


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def pytest_report_header(config: pytest.Config) -> str:
    return f"EXPERIMENTS_HOME per test; SLURM_CONF={os.environ.get('SLURM_CONF', '(unset)')}"
