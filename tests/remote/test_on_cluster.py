"""``--on``: launch, watch and read results on a cluster over SSH, from another account.

Real parts: OpenSSH's client as the laptop user with its own ~/.ssh/config, Debian's sshd on a
loopback port, the cluster user behind it, and this slot's Slurm test cluster.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.test_seed_readme_local import FINETUNE, SEED, TRAIN

from .conftest import CLUSTER, LAPTOP, Site, commit_all, ours, write_as

pytestmark = pytest.mark.slurm

# The seed README's grid, with code_path left to its default (the file's own folder, which
# --on ships) instead of the placeholder /home/user/code.
README_GRID = SEED.replace("    code_path='/home/user/code',\n", "")


def _readme_project(site: Site) -> None:
    assert README_GRID != SEED
    for name, text in (("exp.py", README_GRID), ("train.py", TRAIN),
                       ("finetune.py", FINETUNE)):
        write_as(site.code / name, text, LAPTOP)
    for i in range(40):  # a realistic package beside the experiment
        write_as(site.code / "lib" / f"mod{i:02d}.py", f"VALUE = {i}\n" + "# pad\n" * 50,
                 LAPTOP)
    commit_all(site, "the README grid")


def _ok(res: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert res.returncode == code, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_readme_grid_on_a_cluster_with_one_login_and_nothing_left_running(site: Site) -> None:
    _readme_project(site)
    logins = site.sshd.logins()
    _ok(site.laptop("launch", "--on", "c"))
    _ok(site.laptop("wait", "--on", "c", "--timeout", "600"))
    status = _ok(site.laptop("status", "--on", "c"))
    assert "pretrain" in status and "finetune" in status
    table = _ok(site.laptop("table", "--on", "c", "pretrain", "--format", "csv"))
    assert len(table.strip().splitlines()) == 1 + 12
    logs = _ok(site.laptop("logs", "--on", "c", "pretrain", "--where", "learning_rate=0.001",
                           "--where", "num_epochs=10"))
    assert "attempt 1 of 1" in logs
    assert site.sshd.logins() == logins + 1  # one login for the whole sitting
    markers = list(site.artifacts.rglob(".done"))
    assert len(markers) == 12 + 24  # every artifact built on the cluster
    runs = (site.cluster / "runs.log").read_text().splitlines()
    assert len(runs) == len(set(runs)) == 36
    commit = site.as_laptop("git", "rev-parse", "HEAD").stdout.strip()
    meta = json.loads(next(site.artifacts.glob("PretrainedModel/*/.artifact.json")).read_text())
    assert commit in json.dumps(meta)  # the laptop's commit is the built code's provenance
    assert ours(LAPTOP) == [] and ours(CLUSTER) == []
    stats = site.stats()
    assert [s["verb"] for s in stats] == ["launch", "wait", "status", "table", "logs"]
    assert stats[0]["round_trips"] == 2  # first contact: the agent says what it lacks
    assert all(s["round_trips"] == 1 for s in stats[1:])
