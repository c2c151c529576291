"""``table``, ``report``, ``serve`` and ``efficiency``: what the experiment produced and what
it used; with the results table, the report and server lines and the efficiency table.

Only click loads with this module (``report --help`` needs nothing else); the verbs, the
report, its server and rich are imported by the functions that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from . import render
from .context import CliState, UsageProblem
from .options import common

if TYPE_CHECKING:
    from ..report import ReportWritten
    from ..tracking.views import ResultTable
    from ..verbs.efficiency import EfficiencyReport


@click.command(name="table", help="The results of STAGE: parameters (as built), metrics, state, "
                                  "changed, folder. A result shows the parameters it was built "
                                  "with, from its own record; `changed` names those whose value "
                                  "the experiment gives differently today (see docs/states.md "
                                  "for the states and the JSON document).")
@click.argument("stage")
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="Only artifacts whose parameter KEY (a field path such as "
                   "base_model.lr) equals VALUE (read as JSON when it parses). Repeatable.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]),
              default="table", show_default=True, help="Output format.")
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
@click.option("--columns", default=None, metavar="A,B,...", help="Only these columns.")
@click.option("--sort", default=None, metavar="KEY", help="Sort by a column (-KEY: descending).")
@common
@click.pass_obj
def table_cmd(state: CliState, /, stage: str, where: tuple[str, ...], fmt: str, as_json: bool,
              columns: str | None, sort: str | None, **opts: Any) -> None:
    """The results of one stage in the chosen format."""
    from ..model.selection import SelectionError
    from ..verbs.results import table

    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    try:
        result = table(state.session(**opts), stage, where, cols, sort)
    except SelectionError as exc:
        raise UsageProblem(str(exc)) from None
    render.warnings(result.notes)
    result_table(result, "json" if as_json else fmt)


@click.command(name="report", help="Write an HTML report of the stages (all by default): "
               "progress, failures with logs, results, plots, provenance and cost, in one "
               "self-contained file.")
@click.argument("stages", nargs=-1)
@click.option("-o", "--output", default="report.html", show_default=True,
              type=click.Path(dir_okay=False), help="Where to write the report.")
@common
@click.pass_obj
def report_cmd(state: CliState, /, stages: tuple[str, ...], output: str, **opts: Any) -> None:
    """Write the report file and say what it holds."""
    from ..report import write_report

    written = write_report(state.session(**opts), list(stages) or None, output)
    render.warnings(written.data.warnings)
    report_written(written)


@click.command(help="Serve the report live (refreshed as states change), read-only, to you "
                    "alone: every request needs the secret token the printed URL carries (the "
                    "browser keeps it in a cookie), on localhost too.")
@click.argument("stages", nargs=-1)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (0.0.0.0: every address of this machine).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Another name the page may be opened by (its Host header), besides IP "
                   "addresses, localhost and the bound name; repeatable.")
@click.option("--refresh", type=click.FloatRange(min=2.0), default=5.0, show_default=True,
              help="Seconds between scheduler queries (shared by every viewer).")
@common
@click.pass_obj
def serve(state: CliState, /, stages: tuple[str, ...], port: int, host: str,
          allow_hosts: tuple[str, ...], refresh: float, **opts: Any) -> None:
    """Serve until Ctrl-C."""
    from ..report.serve import make_server

    session = state.session(**opts)
    try:
        server = make_server(session, list(stages) or None, host, port, refresh, allow_hosts)
    except OSError as exc:
        raise UsageProblem(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose "
                           "another --port or --host") from None
    serving(session.experiment.project, server.url)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@click.command(help="What finished tasks used against what they asked for, per stage: "
                    "elapsed vs requested time, CPU efficiency, peak memory vs requested, and "
                    "the tasks that waste most (one sacct call).",
               short_help="Elapsed, CPU and memory use vs requested.")
@click.argument("stages", nargs=-1)
@click.option("-v", "--all", "show_all", is_flag=True,
              help="List every task, not only the 5 that waste most per stage.")
@common
@click.pass_obj
def efficiency(state: CliState, /, stages: tuple[str, ...], show_all: bool, **opts: Any) -> None:
    """Use against requests, per stage."""
    from ..verbs.efficiency import efficiency as efficiency_verb

    report = efficiency_verb(state.session(**opts), list(stages) or None)
    render.warnings(report.warnings)
    efficiency_table(report, show_all)


# -- what they print -------------------------------------------------------------------------
def result_table(result: ResultTable, fmt: str) -> None:
    """A results table as a rich table, or as csv, json or markdown text (unwrapped). In the
    rich table a parameter its result was built with another value of reads ``500 (now
    4000)``, in yellow."""
    if fmt != "table":
        text = {"csv": result.to_csv, "json": result.to_json,
                "markdown": result.to_markdown}[fmt]()
        render.line(text, end="" if text.endswith("\n") else "\n")
        return
    from rich.table import Table

    from ..tracking.views import CHANGED

    table = Table(title=f"{result.stage}: {len(result)} artifact(s)")
    for col in result.columns:
        table.add_column(col, overflow="fold",
                         justify="right" if col in result.metric_columns else "left")
    at = result.columns.index(CHANGED) if CHANGED in result.columns else None
    for row in result.rows:
        changed = row[at] if at is not None and isinstance(row[at], dict) else {}
        table.add_row(*(_cell(col, v, changed) for col, v in zip(result.columns, row,
                                                                  strict=True)))
    render.out().print(table)
    if any(at is not None and row[at] for row in result.rows):
        render.line("Values marked (now …) are what the result was built with; the experiment "
                    "gives the value in brackets today (`status` says which results are stale).")


def _cell(column: str, value: Any, changed: dict[str, Any]) -> str:
    """One cell of the rich table: escaped, a changed parameter in yellow with today's value."""
    from ..tracking.views import CHANGED, cell_text

    if column == CHANGED:
        return render.escape(", ".join(changed)) if changed else ""
    text = render.escape(cell_text(value))
    if column in changed:
        return f"[yellow]{text} (now {render.escape(cell_text(changed[column]))})[/]"
    return text


def report_written(written: ReportWritten) -> None:
    """Where the report went, its size, and the artifacts' states in one line."""
    data = written.data
    counts: dict[str, int] = {}
    for st in data.stages:
        for k, n in st.counts.items():
            counts[k] = counts.get(k, 0) + n
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no artifacts"
    render.line(f"Wrote {written.path} ({written.size / 1024:,.0f} kB in "
                f"{written.seconds:.2f} s): {summary}")


def serving(project: str, url: str) -> None:
    """Where the report is served, and who can read it."""
    render.line(f"Serving the report of {project} at {url}")
    render.line("Keep this URL to yourself: it holds the token every request needs (anyone "
                "with it can read the report and its logs); requests without it are refused.")
    render.line("Read-only; Ctrl-C stops.")


def _pct(value: float | None) -> str:
    """``73%``, or ``n/a``."""
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _duration(seconds: float | None) -> str:
    """``0:00:06``, ``2:00:00``, ``1-00:00:00`` (as Slurm writes times)."""
    from ..verbs.retry import format_time

    return "n/a" if seconds is None else format_time(int(seconds))


def _mb(value: float | None) -> str:
    """``512M``, ``1.5G``, or ``n/a``."""
    return "n/a" if value is None else (f"{value / 1024:.1f}G" if value >= 1024
                                        else f"{value:.0f}M")


def efficiency_table(report: EfficiencyReport, show_all: bool) -> None:
    """Per stage: use against requests; then the tasks that waste most (or all with -v)."""
    from rich.table import Table

    table = Table(title="Efficiency")
    for col in ("stage", "tasks", "elapsed", "requested", "time used", "CPU eff",
                "peak mem", "mem used"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for s in report.stages:
        req = s.requested_h
        table.add_row(s.stage, str(len(s.tasks)), f"{s.elapsed_h:.2f}h",
                      "n/a" if req is None else f"{req:.2f}h",
                      _pct(s.mean("time_used")), _pct(s.mean("cpu_efficiency")),
                      _mb(s.peak_mem_mb), _pct(s.mean("mem_used")))
    render.out().print(table)
    for s in report.stages:
        shown = s.tasks if show_all else s.worst()
        if not shown:
            continue
        render.line(f"{s.stage}: {'every task' if show_all else 'wasting most'}")
        for t in shown:
            each = f" each, {t.attempts} attempts" if t.attempts > 1 else ""
            render.line(f"  {t.task} {t.relpath}: {t.state}, {_duration(t.elapsed_s)} of "
                        f"{_duration(t.time_s)}{each} ({_pct(t.time_used)}), CPU "
                        f"{_pct(t.cpu_efficiency)} of {t.cpus}, memory {_mb(t.max_rss_mb)} of "
                        f"{_mb(t.mem_mb)}")
        if len(s.tasks) > len(shown):
            render.line(f"  … {len(s.tasks) - len(shown)} more (`efficiency -v` lists all)")
