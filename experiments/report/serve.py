"""``serve``: the report as a live, read-only page on a small HTTP server.

The standard library's ``ThreadingHTTPServer`` is enough here: a handful of viewers, three
GET routes, no forms, no sessions, no uploads; a framework would add a dependency and nothing
this page needs. What it must get right, it does in a few lines:

- **One scheduler query per refresh for all viewers**: the data is rebuilt under a lock at
  most every ``min_interval`` seconds; every request in between gets the cached page. The
  hours used (one accounting call) are asked at most every ``ACCOUNTING_INTERVAL_S``.
- **No request path reaches the file system**: routes are matched as strings. ``/log/<job>``
  looks the job up in the project's store and opens the log path *the store* names.
- **Read-only**: only GET and HEAD; nothing changes the grid.
- **Bound to localhost by default**; on any other address every request must carry the random
  token printed at start (``?token=...``), compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from ..session import Session
from ..tracking import logfiles as logs
from .cost_table import Usage, usage
from .data import ReportData, collect

MIN_INTERVAL_S = 5.0
TOKEN_ENV = "EXPERIMENTS_SERVE_TOKEN"  # "1": require the token on localhost too
ACCOUNTING_INTERVAL_S = 300.0  # hours used change slowly; sacct is the costlier query
LOG_LIMIT = 5_000_000


def is_local(host: str) -> bool:
    """Whether ``host`` is a loopback name or address (reachable only from this machine)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class LivePage:
    """The page's data, rebuilt at most every ``min_interval`` seconds for all viewers."""

    def __init__(self, session: Session, stages: Sequence[str] | None,
                 min_interval: float = MIN_INTERVAL_S) -> None:
        self.session = session
        self.stages = list(stages) if stages else None
        self.min_interval = min_interval
        self.refreshes = 0
        self._lock = threading.Lock()
        self._data: ReportData | None = None
        self._at = 0.0
        self._used: Usage | None = None  # hours used: accounting asked every few minutes
        self._used_at = 0.0
        self._cache: dict[str, bytes] = {}

    def data(self) -> ReportData:
        with self._lock:
            if self._data is None or time.monotonic() - self._at >= self.min_interval:
                now = time.monotonic()
                if self._used is None or now - self._used_at >= ACCOUNTING_INTERVAL_S:
                    self._used, self._used_at = usage(self.session, self._stages()), now
                self._data = collect(self.session, self.stages, used=self._used)
                self._at = time.monotonic()
                self._cache = {}
                self.refreshes += 1
            return self._data

    def _stages(self) -> list[str]:
        return self.session.selected(self.stages)

    def rendered(self, kind: str, token_query: str) -> bytes:
        """The page (``html``) or its live sections (``live``), cached per refresh."""
        from .html import render_html, render_live

        data = self.data()
        with self._lock:
            if kind not in self._cache:
                if kind == "html":
                    text = render_html(data, live=f"live{token_query}",
                                       refresh_s=self.min_interval,
                                       log_query=token_query)
                else:
                    text = json.dumps(render_live(data, self.min_interval,
                                                  log_query=token_query))
                self._cache[kind] = text.encode("utf-8")
            return self._cache[kind]

    def log(self, job: str) -> bytes | None:
        """The log of task ``<job_id>_<index>`` of a tracked job, or None."""
        job_id, sep, index = job.rpartition("_")
        if not sep or not index.isdigit():
            return None
        for record in self.session.records(self.stages):
            if record.job_id == job_id and int(index) < len(record.tasks):
                try:
                    section = record.log_section(int(index))
                    if section is not None:  # a pack's log: this artifact's part of it
                        return logs.section_bytes(record.log_path(int(index)), section,
                                                  LOG_LIMIT, from_end=False)[0]
                    with open(record.log_path(int(index)), "rb") as fh:
                        return fh.read(LOG_LIMIT)
                except OSError:
                    return b"(no log yet: the task has not started)\n"
        return None


class _Handler(BaseHTTPRequestHandler):
    server: ReportServer
    server_version = "experiments-serve"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        url = urlsplit(self.path)
        token = self.server.token
        if token is not None:
            given = parse_qs(url.query).get("token", [""])[0]
            if not hmac.compare_digest(given.encode(), token.encode()):
                return self._send(HTTPStatus.FORBIDDEN, b"a token is required: use the URL "
                                  b"printed when serve started\n", "text/plain", send_body)
        query = f"?token={quote(token)}" if token else ""
        page = self.server.page
        try:
            if url.path in ("/", "/report.html"):
                return self._send(HTTPStatus.OK, page.rendered("html", query), "text/html",
                                  send_body)
            if url.path == "/live":
                return self._send(HTTPStatus.OK, page.rendered("live", query),
                                  "application/json", send_body)
            if url.path.startswith("/log/"):
                body = page.log(url.path[len("/log/"):])
                if body is not None:
                    return self._send(HTTPStatus.OK, body, "text/plain", send_body)
        except Exception as exc:  # the page says why; the server keeps serving
            return self._send(HTTPStatus.INTERNAL_SERVER_ERROR,
                              f"could not build the report: {exc}\n".encode(), "text/plain",
                              send_body)
        self._send(HTTPStatus.NOT_FOUND, b"not found: this server shows the report (/) and "
                   b"the logs of its tasks (/log/<job>_<index>) only\n", "text/plain", send_body)

    def _send(self, status: HTTPStatus, body: bytes, kind: str, send_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: the terminal shows the URL, not every poll


class ReportServer(ThreadingHTTPServer):
    """The live report's server; ``url`` is what to open (with the token when one is needed)."""

    daemon_threads = True

    def __init__(self, page: LivePage, host: str, port: int) -> None:
        self.page = page
        shared = os.environ.get(TOKEN_ENV) == "1"  # --on: a login node's loopback is shared
        self.token = None if is_local(host) and not shared else secrets.token_urlsafe(24)
        if ":" in host.strip("[]"):
            self.address_family = socket.AF_INET6
        super().__init__((host.strip("[]"), port), _Handler)
        self.host = host

    @property
    def url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        query = f"?token={quote(self.token)}" if self.token else ""
        return f"http://{host}:{self.server_address[1]}/{query}"


def make_server(session: Session, stages: Sequence[str] | None, host: str = "127.0.0.1",
                port: int = 8765, min_interval: float = MIN_INTERVAL_S) -> ReportServer:
    """A server for the live report (not yet serving: call ``serve_forever``)."""
    page = LivePage(session, stages, min_interval)
    page.data()  # fail now, not on the first request, if the report cannot be built
    return ReportServer(page, host, port)
