"""The accounting rows cached between commands (issue 26): used only while fresh, for the same
cluster and user, from a file of ours; anything else is read again."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from experiments.backends.slurm import site_limits
from experiments.backends.slurm.client import SlurmClient
from experiments.backends.slurm.site_limits import SiteLimits, cache_file


def _limits(home: Path) -> SiteLimits:
    return SiteLimits(SlurmClient(), cache_file(home))


def test_fresh_rows_of_the_same_cluster_are_reused(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm/a.conf")
    site = _limits(tmp_path)
    assert not site.accounting_cached()
    site._write_cache(cache_file(tmp_path), {"qos": "normal|0", "assoc": ""})
    assert _limits(tmp_path).accounting_cached()
    assert _limits(tmp_path)._cached_rows() == {"qos": "normal|0", "assoc": ""}


def test_another_cluster_or_old_rows_are_read_again(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm/a.conf")
    path = cache_file(tmp_path)
    _limits(tmp_path)._write_cache(path, {"qos": "", "assoc": ""})
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm/b.conf")
    assert not _limits(tmp_path).accounting_cached()
    path.rename(cache_file(tmp_path))  # b's file name, a's key inside
    assert not _limits(tmp_path).accounting_cached()
    cache_file(tmp_path).rename(path)
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm/a.conf")
    assert _limits(tmp_path).accounting_cached()
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "at": time.time() - site_limits.ACCOUNTING_TTL_S - 1}))
    assert not _limits(tmp_path).accounting_cached()
    path.write_text("{not json")
    assert not _limits(tmp_path).accounting_cached()
