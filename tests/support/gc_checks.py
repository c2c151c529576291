"""gc's checks, shared by the scenarios that run them on the local backend (a detached launch
is the live job) and on FakeBackend (a running task): what ended goes, a live job's files stay,
history keeps what happened."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from experiments.tracking.store import Store

Cli = Callable[..., tuple[int, str]]


def ok(result: tuple[int, str]) -> str:
    """The output of a command that exited 0."""
    code, out = result
    assert code == 0, out
    return out


def job_files(home: Path, project: str, stage: str) -> tuple[list[Path], list[Path]]:
    """The task logs and spec folders of a stage's jobs, as their records name them."""
    records = Store(home, project).records(stage)
    logs = [r.log_path(i) for r in records for i in range(len(r.tasks))]
    return logs, [Path(r.spec_dir) for r in records]


def check_gc(cli: Cli, home: Path, project: str, rebuilt: Path, only_trace: Path) -> None:
    """The slow job is live: gc keeps its files and removes the quick jobs' once old enough.

    ``cli(*argv)`` runs the experiment's command line and returns (exit code, stdout);
    ``rebuilt`` and ``only_trace`` are the moved-aside markers left by ``prepare``."""
    quick_logs, quick_specs = job_files(home, project, "quick")
    slow_logs, slow_specs = job_files(home, project, "slow")
    assert all(p.exists() for p in quick_logs + quick_specs + slow_specs)

    young = json.loads(ok(cli("gc", "--older-than", "1", "--dry-run", "--json")))
    assert young["removed"] == []  # everything ended today
    assert "live" in young["kept"].values()
    assert {r.job_id for r in Store(home, project).records("quick")} <= set(young["kept"])

    dry = json.loads(ok(cli("gc", "--older-than", "0", "--dry-run", "--json")))
    listed = {r["path"] for r in dry["removed"]}
    assert listed == {str(p) for p in quick_logs + quick_specs} | {str(rebuilt)}
    assert dry["files"] == sum(r["files"] for r in dry["removed"]) >= len(listed)
    assert dry["bytes"] > 0 and "live" in dry["kept"].values()
    assert all(p.exists() for p in quick_logs + quick_specs + [rebuilt])  # dry: nothing gone

    text = ok(cli("gc", "--older-than", "0"))
    assert f"Removed {len(quick_logs)} task log(s), {len(quick_specs)} spec folder(s), " \
           "1 moved-aside done marker(s)" in text, text
    assert "1 job(s) live" in text
    assert not any(p.exists() for p in quick_logs + quick_specs + [rebuilt])
    assert only_trace.exists()  # i=1 not rebuilt: its newest moved-aside marker stays
    assert all(p.exists() for p in slow_specs), "gc touched the live job's spec"
    assert "running" in cli("status", "slow")[1]  # exit 3: live

    history = ok(cli("history", "quick"))
    records = Store(home, project).records("quick")
    assert all(r.collected_at for r in records) and all(r.job_id in history for r in records)
    assert "built" in history
    code, cat = cli("cat", f"{records[0].job_id}_0")
    assert "removed by gc" in cat, cat
    again = json.loads(ok(cli("gc", "--older-than", "0", "--json")))
    assert again["removed"] == []
    assert all(p.exists() for p in slow_specs)
