"""Fixtures of the unit tests: a private EXPERIMENTS_HOME per test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def exp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every unit test gets its own experiments home, so none touches ~/.experiments."""
    home = tmp_path / "exphome"
    monkeypatch.setenv("EXPERIMENTS_HOME", str(home))
    monkeypatch.delenv("EXPERIMENTS_CRASH_AT", raising=False)
    return home
