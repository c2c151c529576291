"""Where the CLI prints: the consoles, errors and warnings, plain lines, JSON, shared cells.

Each command module renders its own output (``launch_cmd`` the plan, ``watch_cmd`` the status
table, ...); this module keeps what several of them share. rich loads on the first use of a
console: a line that needs no markup goes out plainly (:func:`line`), so ``--help``, ``init``
or an error in a pipe never import it. (The only other writer to the terminal is the
excepthook ``experiments/__init__.py`` installs, which turns an ``ExperimentsError`` escaping
an experiment file into one line on stderr.)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from ..tracking.staleness import Stale
    from ..tracking.status import ArtifactState
    from ..tracking.store import JobRecord
    from ..verbs.queued_stale import QueuedStale

WIDE = 100_000  # piped output: never wrapped, so grep and awk see whole lines
_CONTROL = dict.fromkeys((7, 8, 11, 12, 13))  # the control codes rich drops from text
_STYLE = {"built": "green", "stale": "yellow", "running": "cyan", "queued": "blue",
          "failed": "red", "dep-failed": "red", "cancelled": "yellow", "modified": "red",
          "unknown": "magenta", "submitting": "magenta", "not started": "dim",
          "other cluster": "magenta"}
_consoles: dict[bool, Console] = {}


def console(stderr: bool = False) -> Console:
    """The console for stdout or stderr, made on first use: the terminal's width on a
    terminal; when piped, no wrapping at all (full lines, tables as wide as their content)."""
    found = _consoles.get(stderr)
    if found is None:
        from rich.console import Console

        if Console(stderr=stderr).is_terminal:
            found = Console(stderr=stderr, highlight=False)
        else:
            found = Console(stderr=stderr, highlight=False, width=WIDE, soft_wrap=True)
        _consoles[stderr] = found
    return found


def out() -> Console:
    """The stdout console (rich markup, tables)."""
    return console()


def err() -> Console:
    """The stderr console."""
    return console(stderr=True)


def is_terminal(stderr: bool = False) -> bool:
    """Whether rich would style this stream, decided by rich's rule without importing it:
    TTY_COMPATIBLE, then FORCE_COLOR, then whether the stream is a terminal."""
    forced = os.environ.get("TTY_COMPATIBLE", "")
    if forced in ("0", "1"):
        return forced == "1"
    force_color = os.environ.get("FORCE_COLOR")
    if force_color is not None:
        return force_color != ""
    try:
        return (sys.stderr if stderr else sys.stdout).isatty()
    except (ValueError, AttributeError):  # a closed or unusual stream: no terminal
        return False


def line(text: str, err: bool = False, end: str = "\n") -> None:
    """One line that needs no markup, written as it is (rich is not needed to print it)."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text.translate(_CONTROL) + end)
    stream.flush()


def escape(text: str) -> str:
    """``text`` with rich markup escaped, for a line that has markup of its own."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def style(state: ArtifactState) -> str:
    """The colour of an artifact state in tables and lines."""
    return _STYLE[state.value]


def error(message: str) -> None:
    """``error: MESSAGE`` on stderr (red on a terminal)."""
    if is_terminal(stderr=True):
        err().print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    else:
        line(f"error: {message}", err=True)


def warnings(messages: Sequence[str]) -> None:
    """``warning: MESSAGE`` on stderr, one line each (yellow on a terminal)."""
    for m in messages:
        if is_terminal(stderr=True):
            err().print(f"[yellow]warning:[/] {escape(m)}", soft_wrap=True)
        else:
            line(f"warning: {m}", err=True)


def stale(found: Sequence[Stale], limit: int | None = 20) -> None:
    """Stale results with their reasons (the first ``limit``; None: all), and what to do."""
    if not found:
        return
    o = out()
    o.print(f"[yellow]{len(found)} stale[/] (built, but no longer what the experiment "
            "describes):")
    for s in found if limit is None else found[:limit]:
        o.print(f"[yellow]stale[/] {escape(f'{s.relpath} [{s.stage}]: {s.reason}')}",
                soft_wrap=True)
    if limit is not None and len(found) > limit:
        o.print(f"… and {len(found) - limit} more (`status -v` or `status --json` lists all)")
    o.print("`launch --rebuild-stale` rebuilds them and their dependents; `accept STAGE` "
            "declares them current.")


def queued_stale(found: Sequence[QueuedStale], limit: int | None, rebuild: bool) -> None:
    """Queued work planned with other parameters (drylaunch): which artifacts, what changed,
    what ``launch --rebuild-stale`` does about it."""
    from ..verbs.queued_stale import listing

    if not found:
        return
    jobs = ", ".join(sorted({q.record.job_id or "" for q in found}))
    out().print(f"[yellow]{len(found)} queued or running task(s)[/] in job(s) {jobs} build "
                "other than the experiment describes today:")
    for text in listing(found, limit):
        line(f"  {text}")
    line("`launch --rebuild-stale` offers to cancel those jobs and resubmit their artifacts"
         + (" (planned above)." if rebuild else " with today's parameters."))


# -- JSON for scripts (--json): plain data, one document on stdout -------------------------
def as_json(data: object) -> None:
    """Print ``data`` as one JSON document (nothing else goes to stdout)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def record_json(r: JobRecord) -> dict[str, object]:
    """One job record's facts in ``launch --json`` and ``history --json``."""
    return {"job_id": r.job_id, "name": r.name, "stage": r.stage, "tier": r.tier,
            "backend": r.backend, "submitted_at": r.submitted_at,
            "depends_on": list(r.depends_on), "tasks": len(r.tasks)}
