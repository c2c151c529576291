"""``gc``: remove old logs, specs, moved-aside markers and code snapshots no live job needs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from ..verbs.housekeeping import GcReport, Kind, collect
from . import render
from .options import common

if TYPE_CHECKING:
    from .main import _State

SHOWN = 50  # paths listed by --dry-run before "... and N more"
_WHAT = {Kind.LOG: "task log(s)", Kind.SPEC: "spec folder(s)",
         Kind.MARKER: "moved-aside done marker(s)", Kind.DETACHED: "detached launcher log(s)"}


@click.command(help="Remove what no live job and no recorded history needs, once older than "
                    "--older-than days: logs and spec folders of ended jobs (their records "
                    "stay: `history` keeps their states), moved-aside done markers, detached "
                    "launcher logs, and code snapshots no live job runs in. Never touches a "
                    "queued or running job's files.",
               short_help="Remove old logs, specs, markers and snapshots.")
@click.option("--older-than", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="DAYS", help="Keep what was in use within this many days.")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@click.option("--snapshots", is_flag=True, default=True,
              help="Accepted for compatibility: code snapshots are always collected.")
@common
@click.pass_obj
def gc(state: _State, /, older_than: float, dry_run: bool, as_json: bool, snapshots: bool,
       **opts: Any) -> None:
    report = collect(state.session(**opts), older_than_days=older_than, dry_run=dry_run)
    if as_json:
        render.as_json(_json(report))
        return
    render.warnings(report.warnings)
    _print(report)


def _json(report: GcReport) -> dict[str, Any]:
    snaps = report.snapshots
    files, size = report.total()
    return {"dry_run": report.dry_run, "older_than_days": report.older_than_days,
            "files": files, "bytes": size, "jobs_collected": report.jobs_collected,
            "kept": report.kept,
            "removed": [{"kind": r.kind.value, "path": r.path, "files": r.files,
                         "bytes": r.bytes, "job": r.job} for r in report.removals],
            "snapshots": {"removed": [r.id for r in snaps.removed] if snaps else [],
                          "bytes": snaps.bytes_freed if snaps else 0},
            "warnings": report.warnings}


def _print(report: GcReport) -> None:
    out = render.out
    verb = "Would remove" if report.dry_run else "Removed"
    files, size = report.total()
    parts = [f"{n} {what}" for kind, what in _WHAT.items()
             if (n := sum(1 for r in report.removals if r.kind is kind))]
    out.print(escape(f"{verb} {', '.join(parts) or 'nothing'}: {files} file(s), "
                     f"{size / 1e6:.1f} MB (older than {report.older_than_days:g} days)."),
              soft_wrap=True)
    if report.jobs_collected:
        out.print(escape(f"Jobs whose logs and specs {'would go' if report.dry_run else 'went'}: "
                         f"{', '.join(report.jobs_collected)}; their records stay (`history`)."),
                  soft_wrap=True)
    if report.kept:
        reasons: dict[str, list[str]] = {}
        for job, why in report.kept.items():
            reasons.setdefault(why, []).append(job)
        out.print(escape("Kept: " + "; ".join(f"{len(jobs)} job(s) {why} ({_few(jobs)})"
                                              for why, jobs in reasons.items())), soft_wrap=True)
    if report.dry_run:
        for r in report.removals[:SHOWN]:
            out.print(escape(f"  - {r.kind.value}: {r.path} ({r.bytes:,} bytes)"), soft_wrap=True)
        if len(report.removals) > SHOWN:
            out.print(f"  ... and {len(report.removals) - SHOWN} more")
    if report.snapshots is not None:
        render.gc_result(report.snapshots, report.older_than_days)


def _few(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")
