"""The report as one self-contained HTML page: Jinja2 templates with autoescaping on, styles
and script inline, data for the script as JSON that cannot close its ``<script>`` element.

Every string from a user (parameter values, stage and project names, log lines, reasons) goes
through the templates' escaping or into the JSON, which the page's script only ever writes with
``textContent``; a Content-Security-Policy lets only the page's own script run besides.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ExperimentsError
from .data import ReportData

TEMPLATES = Path(__file__).with_name("templates")
EXTRA_HINT = "pip install 'slurm-experiments[report]'"
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 190, 54, 70, 18, 10


@lru_cache(maxsize=1)
def _environment() -> Any:
    try:
        import jinja2
    except ImportError:
        raise ExperimentsError(f"the report needs Jinja2; install it with {EXTRA_HINT}") from None
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.globals["hours"] = _hours
    return env


def _hours(value: float | None) -> str:
    """Hours to one decimal; "<0.1" for a little, so "nothing" and "not known" stay apart."""
    if value is None:
        return "—"
    return "<0.1" if 0 < value < 0.05 else f"{value:,.1f}"


def _clean(value: Any) -> Any:
    """JSON the browser can parse: NaN and infinities become text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def script_json(value: Any) -> str:
    """JSON safe inside ``<script>``: no ``<``, ``>``, ``&`` or line separators as such."""
    text = json.dumps(_clean(value), ensure_ascii=False, separators=(",", ":"), default=str)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def graph_layout(data: ReportData) -> dict[str, Any]:
    """Boxes in columns by level (the longest chain of stages before), arrows between."""
    columns: dict[int, list[str]] = {}
    for s in data.stages:
        columns.setdefault(s.level, []).append(s.name)
    pos: dict[str, tuple[int, int]] = {}
    for level, names in columns.items():
        for row, name in enumerate(names):
            pos[name] = (PAD + level * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    nodes = []
    for s in data.stages:
        x, y = pos[s.name]
        live = s.counts.get("running", 0) + s.counts.get("queued", 0)
        bad = s.counts.get("failed", 0) + s.counts.get("dep-failed", 0)
        summary = ", ".join(f"{n} {k}" for k, n in s.counts.items() if n)
        nodes.append({"name": s.name, "label": s.name if len(s.name) <= 24 else s.name[:23] + "…",
                      "x": x, "y": y, "built": s.counts.get("built", 0), "total": s.total,
                      "stale": s.counts.get("stale", 0),
                      "bad": bad, "live": live, "done": s.total == s.counts.get("built", 0),
                      "summary": summary or "empty"})
    edges = [{"x1": pos[a][0] + NODE_W, "y1": pos[a][1] + NODE_H // 2,
              "x2": pos[b][0] - 2, "y2": pos[b][1] + NODE_H // 2}
             for a, b in data.edges if a in pos and b in pos]
    width = PAD * 2 + (max(columns, default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(v) for v in columns.values()), default=1) * (NODE_H + GAP_Y)
    return {"nodes": nodes, "edges": edges, "width": width, "height": height - GAP_Y,
            "node_w": NODE_W, "node_h": NODE_H}


def _context(data: ReportData, log_query: str | None) -> dict[str, Any]:
    """What the templates see; ``log_query`` (served pages only) links each log to
    ``log/<job>`` with the token's query."""
    return {"data": data, "graph": graph_layout(data), "log_query": log_query}


def page_data(data: ReportData, refresh_s: float | None = None) -> dict[str, Any]:
    """What the page's script reads: the tables, why queued tasks wait (and the live refresh
    interval)."""
    return {"tables": data.tables, "waiting": data.waiting, "refresh_s": refresh_s}


def render_html(data: ReportData, *, live: str | None = None,
                refresh_s: float | None = None, log_query: str | None = None) -> str:
    """The whole page; ``live`` is the URL the page polls for fresh sections (serve)."""
    env = _environment()
    return str(env.get_template("page.html.j2").render(
        **_context(data, log_query), live=live, nonce=secrets.token_urlsafe(16),
        css=(TEMPLATES / "page.css").read_text(encoding="utf-8"),
        js=(TEMPLATES / "page.js").read_text(encoding="utf-8").replace("</", "<\\/"),
        data_json=script_json(page_data(data, refresh_s))))


SECTIONS = {"warnings": "warnings.html.j2", "progress-body": "progress.html.j2",
            "failures-body": "failures.html.j2", "sweeps-body": "sweeps.html.j2",
            "provenance-body": "provenance.html.j2"}


def render_live(data: ReportData, refresh_s: float, log_query: str = "") -> dict[str, Any]:
    """The sections a live page swaps in (rendered, escaped HTML) and the script's data."""
    env = _environment()
    ctx = _context(data, log_query)
    return {"html": {id_: str(env.get_template(name).render(**ctx))
                     for id_, name in SECTIONS.items()},
            "data": _clean(page_data(data, refresh_s)), "generated_at": data.generated_at}


def as_dict(data: ReportData) -> dict[str, Any]:
    """The report's data as plain JSON-able dicts (for tests and scripts)."""
    return _clean(asdict(data))  # type: ignore[no-any-return]
