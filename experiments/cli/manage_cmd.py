"""``cancel``, ``invalidate``, ``accept``, ``gc`` and ``init``: stopping jobs, marking results
for rebuilding or declaring stale ones current, removing what no job needs, writing a starter
file; with what they print.

Only click loads with this module (``gc --help`` needs nothing else); the verbs are imported by
the functions that use them. Nothing here needs rich markup: every line is plain.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from . import context, render
from .context import CliState, UsageProblem, complete_stages
from .options import common

if TYPE_CHECKING:
    from ..launching.snapshots import GcResult
    from ..tracking.store import JobRecord
    from ..verbs import Acceptance, Invalidation
    from ..verbs.housekeeping import GcReport

SHOWN = 50  # paths listed by gc --dry-run before "... and N more"


@click.command(help="Cancel the live jobs of the stages. Without stages it lists every live "
                    "job and asks first (or needs --yes when there is no terminal to ask).")
@click.argument("stages", nargs=-1, shell_complete=complete_stages)
@click.option("--yes", "-y", is_flag=True, help="Cancel every live job without asking.")
@common
@click.pass_obj
def cancel(state: CliState, /, stages: tuple[str, ...], yes: bool, **opts: Any) -> None:
    """Cancel the stages' live jobs; a bare cancel lists them and asks first."""
    from ..verbs.cancel import cancel_jobs, cancel_targets
    from ..verbs.inspect import tracked_roots

    session = state.session(**opts)
    if not stages and not yes:
        targets = cancel_targets(session)
        if targets:
            cancel_list(targets)
            if not context.can_ask():
                raise UsageProblem(f"cancel without stages would cancel all {len(targets)} "
                                   "live job(s) above; name the stages, or pass --yes")
            if not click.confirm(f"Cancel these {len(targets)} job(s)?", default=False):
                render.line("Nothing cancelled.")
                return
    result = cancel_jobs(session, list(stages) or None)
    render.warnings(result.notes)
    cancelled = result.job_ids
    render.line(f"Cancelled {len(cancelled)} job(s): {' '.join(cancelled)}"
                if cancelled else "No live jobs to cancel.")
    if len(tracked_roots(session)) > 1:  # say which root, and that others are left
        render.line(f"(jobs building into {session.experiment.artifact_path}; jobs of other "
                    "roots are left alone: `--artifact-path DIR cancel` stops them)")


def cancel_list(records: Sequence[JobRecord]) -> None:
    """The jobs a bare ``cancel`` would stop, one line each."""
    render.line(f"Live jobs ({len(records)}):")
    for r in records:
        render.line(f"  {r.job_id}  {r.stage}  tier {r.tier}  {len(r.tasks)} task(s)  "
                    f"submitted {r.submitted_at[:16].replace('T', ' ')}")


@click.command(help="Mark built artifacts of STAGES for rebuilding: their done markers are moved "
                    "aside (.done.invalidated-<time>), their results kept. --where key=value "
                    "(repeatable; the value is JSON when it parses, the key may be dotted like "
                    "base.lr) chooses which.",
               short_help="Mark built artifacts for rebuilding.")
@click.argument("stages", nargs=-1, required=True)
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="Only artifacts whose parameter KEY equals VALUE (repeatable: all must hold).")
@click.option("--downstream", is_flag=True,
              help="Also every built artifact that depends on one of them, in any stage.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common
@click.pass_obj
def invalidate(state: CliState, /, stages: tuple[str, ...], where: tuple[str, ...],
               downstream: bool, yes: bool, **opts: Any) -> None:
    """List what would be marked, ask (unless --yes), then move the done markers aside."""
    from ..verbs.invalidate import apply, select

    found = select(state.session(**opts), list(stages), where=list(where),
                   downstream=downstream)
    invalidation(found, done=False)
    if not found.targets:
        return
    if not yes:
        if not sys.stdin.isatty():
            raise UsageProblem("invalidate asks for confirmation, but there is no terminal to "
                               "ask on; pass --yes to mark them without asking")
        if not click.confirm("Mark them for rebuilding?", default=False):
            render.line("Nothing changed.")
            return
    apply(found)
    render.line(f"Moved {len(found.moved)} done marker(s) aside; `launch` rebuilds them.")


def invalidation(inv: Invalidation, done: bool) -> None:
    """What ``invalidate`` will touch (``done=False``) or touched."""
    if not inv.targets:
        render.line("Nothing to invalidate: no built artifact matches.")
        return
    verb = "Marked" if done else "Will mark"
    render.line(f"{verb} {len(inv.targets)} built artifact(s) for rebuilding (done marker "
                "moved aside, results kept):")
    for t in inv.targets:
        why = "" if t.why == "selected" else f" ({t.why})"
        render.line(f"  - {t.relpath} [{t.stage}]{why}")
    if done:
        render.line("`launch` rebuilds them.")


@click.command(help="Declare stale results of STAGES current, on purpose (the opposite of "
                    "invalidate): each chosen result's record (.artifact.json) keeps today's "
                    "parameters, dependencies and code as accepted, with --reason and the "
                    "date; `history` lists it, and invalidate undoes it (the result is "
                    "rebuilt). --where key=value (repeatable) chooses which.",
               short_help="Declare stale results current, on purpose.")
@click.argument("stages", nargs=-1, required=True, shell_complete=complete_stages)
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="Only artifacts whose parameter KEY equals VALUE (repeatable: all must hold).")
@click.option("--reason", default=None, metavar="TEXT",
              help="Why the results still hold, recorded with them (default: 'accepted on "
                   "purpose').")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common
@click.pass_obj
def accept(state: CliState, /, stages: tuple[str, ...], where: tuple[str, ...],
           reason: str | None, yes: bool, **opts: Any) -> int:
    """List the stale results chosen, ask (unless --yes), then record their acceptance."""
    from ..verbs.accept import apply, select

    session = state.session(**opts)
    found = select(session, list(stages), where=list(where))
    render.warnings(found.warnings)
    if not found.targets:
        render.line("Nothing to accept: no stale result matches.")
        return 0
    render.line(f"Will declare {len(found.targets)} stale result(s) current (recorded in each "
                "one's .artifact.json; `invalidate` undoes it):")
    _few_lines([f"  - {t.relpath} [{t.stage}]: {t.reason}" for t in found.targets])
    if not yes:
        if not context.can_ask():
            raise UsageProblem("accept asks for confirmation, but there is no terminal to ask "
                               "on; pass --yes to accept them without asking")
        if not click.confirm("Accept them?", default=False):
            render.line("Nothing changed.")
            return 0
    acceptance(apply(session, found, reason))
    return 1 if found.failed else 0


def acceptance(acc: Acceptance) -> None:
    """What ``accept`` recorded, what it could not, and what is still stale (and why)."""
    render.line(f"Accepted {len(acc.written)} result(s) as current.")
    for text in acc.failed:
        render.error(f"not accepted: {text}")
    if acc.still_stale:
        render.line(f"{len(acc.still_stale)} of them are still stale (accept their "
                    "dependencies too, or rebuild them):")
        _few_lines([f"  - {s.relpath} [{s.stage}]: {s.reason}" for s in acc.still_stale])


def _few_lines(lines: Sequence[str], limit: int = SHOWN) -> None:
    """The first ``limit`` lines, and how many more."""
    for text in lines[:limit]:
        render.line(text)
    if len(lines) > limit:
        render.line(f"  ... and {len(lines) - limit} more")


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
def gc(state: CliState, /, older_than: float, dry_run: bool, as_json: bool, snapshots: bool,
       **opts: Any) -> None:
    """Collect (or list, with --dry-run) what no job needs any more."""
    from ..verbs.housekeeping import collect

    report = collect(state.session(**opts), older_than_days=older_than, dry_run=dry_run)
    if as_json:
        render.as_json(_gc_json(report))
        return
    render.warnings(report.warnings)
    _gc_print(report)


def _gc_json(report: GcReport) -> dict[str, Any]:
    """``gc --json``: what was (or would be) removed and kept."""
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


def _gc_print(report: GcReport) -> None:
    """What gc removed (or would), which jobs it collected and why others were kept."""
    from ..verbs.housekeeping import Kind

    what = {Kind.LOG: "task log(s)", Kind.SPEC: "spec folder(s)",
            Kind.MARKER: "moved-aside done marker(s)", Kind.DETACHED: "detached launcher log(s)"}
    verb = "Would remove" if report.dry_run else "Removed"
    files, size = report.total()
    parts = [f"{n} {label}" for kind, label in what.items()
             if (n := sum(1 for r in report.removals if r.kind is kind))]
    render.line(f"{verb} {', '.join(parts) or 'nothing'}: {files} file(s), "
                f"{size / 1e6:.1f} MB (older than {report.older_than_days:g} days).")
    if report.jobs_collected:
        render.line(f"Jobs whose logs and specs {'would go' if report.dry_run else 'went'}: "
                    f"{', '.join(report.jobs_collected)}; their records stay (`history`).")
    if report.kept:
        reasons: dict[str, list[str]] = {}
        for job, why in report.kept.items():
            reasons.setdefault(why, []).append(job)
        render.line("Kept: " + "; ".join(f"{len(jobs)} job(s) {why} ({_few(jobs)})"
                                         for why, jobs in reasons.items()))
    if report.dry_run:
        for r in report.removals[:SHOWN]:
            render.line(f"  - {r.kind.value}: {r.path} ({r.bytes:,} bytes)")
        if len(report.removals) > SHOWN:
            render.line(f"  ... and {len(report.removals) - SHOWN} more")
    if report.snapshots is not None:
        gc_result(report.snapshots, report.older_than_days)


def _few(items: list[str], n: int = 5) -> str:
    """The first ``n`` items, and how many more."""
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def gc_result(result: GcResult, older_than_days: float) -> None:
    """The code snapshots gc removed (or would), and those live jobs still use."""
    verb = "Would remove" if result.dry_run else "Removed"
    render.line(f"{verb} {len(result.removed)} snapshot(s) unused for {older_than_days:g} "
                f"days, {result.bytes_freed / 1e6:.1f} MB; kept {len(result.kept_in_use)} in "
                "use by live jobs.")
    for r in result.removed:
        render.line(f"  - {r.id} ({r.bytes / 1e6:.1f} MB, idle {r.idle_s / 86400:.1f} days)")


@click.command(help="Write a commented starter experiment to PATH.",
               short_help="Write a starter experiment file.")
@click.argument("path", default="my_experiment.py", type=click.Path(dir_okay=False))
def init(path: str) -> None:
    """Write the starter file (needs no experiment)."""
    from ..verbs.starter import write_starter

    written = write_starter(path)
    render.line(f"Wrote {written}. Try: python {written} launch --local")
