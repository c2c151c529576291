"""The HTML report and the live page: ``report`` writes one self-contained file, ``serve``
shows the same page refreshed as states change.

``data`` collects what the page shows (one scheduler query), ``html`` renders it with Jinja2
(the optional extra ``report``), ``serve`` is a read-only HTTP server on the standard library.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import _atomic
from ..session import Session
from .data import ReportData, collect


@dataclass(frozen=True)
class ReportWritten:
    """Where the report went, its size, what it counted and how long it took."""

    path: Path
    size: int
    seconds: float
    data: ReportData


def write_report(session: Session, stages: Sequence[str] | None, path: str | os.PathLike[str]
                 ) -> ReportWritten:
    """Write the report of ``stages`` (all by default) to ``path``, atomically."""
    from .html import render_html

    start = time.perf_counter()
    data = collect(session, stages)
    text = render_html(data).encode("utf-8")
    target = Path(path)
    _atomic.write_bytes(str(target), text, durable=False)
    return ReportWritten(target, len(text), time.perf_counter() - start, data)


__all__ = ["ReportData", "ReportWritten", "collect", "write_report"]
