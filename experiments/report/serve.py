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
- **Its owner's only** (:mod:`.guard`): every request needs the token printed at start (in the
  URL, then a cookie), on loopback too; the ``Host`` header must name this server.
- **Bounded**: each connection has a timeout (``TIMEOUT_S``) and at most ``MAX_THREADS`` are
  served at once; more are answered "busy" and closed by the accepting thread, so idle
  connections cannot pile up threads.
"""

from __future__ import annotations

import json
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..session import Session
from ..tracking import logfiles as logs
from . import guard
from .cost_table import Usage, usage
from .data import ReportData, collect

MIN_INTERVAL_S = 5.0
ACCOUNTING_INTERVAL_S = 300.0  # hours used change slowly; sacct is the costlier query
LOG_LIMIT = 5_000_000
TIMEOUT_S = 10.0  # a connection that sends nothing for this long is closed
MAX_THREADS = 16  # connections served at once; more are told "busy" and closed


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
        """The log of Slurm's task ``<job_id>_<index>`` of a tracked job (a pack's whole log),
        or of ``<job_id>_<index>/<relpath>`` (that artifact's part of it); None if no such."""
        task, _, relpath = job.partition("/")
        job_id, sep, index = task.rpartition("_")
        if not sep or not index.isdigit():
            return None
        for record in self.session.records(self.stages):
            where = record.positions(int(index)) if record.job_id == job_id else []
            if relpath:
                where = [i for i in where if record.tasks[i][1] == unquote(relpath)]
            if where:
                try:
                    section = record.log_section(where[0]) if len(where) == 1 else None
                    if section is not None:  # a pack's log: this artifact's part of it
                        return logs.section_bytes(record.log_path(where[0]), section,
                                                  LOG_LIMIT, from_end=False)[0]
                    with open(record.log_path(where[0]), "rb") as fh:
                        return fh.read(LOG_LIMIT)
                except OSError:
                    return b"(no log yet: the task has not started)\n"
        return None


class _Handler(BaseHTTPRequestHandler):
    server: ReportServer
    server_version = "experiments-serve"
    sys_version = ""
    timeout = TIMEOUT_S  # the socket's: an idle or stalled connection is closed

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        url = urlsplit(self.path)
        server = self.server
        if not guard.host_allowed(self.headers.get("Host"), server.names):
            return self._send(HTTPStatus.FORBIDDEN, b"this server answers only to its own "
                              b"address (see serve --allow-host)\n", "text/plain", send_body)
        given, in_query = guard.given_token(url.query, self.headers.get("Cookie"), server.port)
        if not guard.token_matches(given, server.token):
            return self._send(HTTPStatus.FORBIDDEN, guard.TOKEN_PAGE, "text/html", send_body)
        cookie = guard.set_cookie(server.token, server.port) if in_query else None
        page = server.page
        try:
            if url.path in ("/", "/report.html"):
                return self._send(HTTPStatus.OK, page.rendered("html", ""), "text/html",
                                  send_body, cookie)
            if url.path == "/live":
                return self._send(HTTPStatus.OK, page.rendered("live", ""),
                                  "application/json", send_body, cookie)
            if url.path.startswith("/log/"):
                body = page.log(url.path[len("/log/"):])
                if body is not None:
                    return self._send(HTTPStatus.OK, body, "text/plain", send_body, cookie)
        except Exception as exc:  # the page says why; the server keeps serving
            return self._send(HTTPStatus.INTERNAL_SERVER_ERROR,
                              f"could not build the report: {exc}\n".encode(), "text/plain",
                              send_body)
        self._send(HTTPStatus.NOT_FOUND, b"not found: this server shows the report (/) and "
                   b"the logs of its tasks (/log/<job>_<index>) only\n", "text/plain", send_body)

    def _send(self, status: HTTPStatus, body: bytes, kind: str, send_body: bool,
              cookie: str | None = None) -> None:
        self.send_response(status)
        if cookie is not None:
            self.send_header("Set-Cookie", cookie)
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
        pass  # quiet: the terminal shows the URL, not every poll (nor any request's token)


class ReportServer(ThreadingHTTPServer):
    """The live report's server; ``url`` is what to open (it carries the token)."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, page: LivePage, host: str, port: int,
                 allow_hosts: Iterable[str] = ()) -> None:
        self.page = page
        self.token = secrets.token_urlsafe(24)
        self.names = guard.allowed_names(host, allow_hosts)
        self._slots = threading.BoundedSemaphore(MAX_THREADS)
        if ":" in host.strip("[]"):
            self.address_family = socket.AF_INET6
        super().__init__((host.strip("[]"), port), _Handler)
        self.host = host

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        host = self.host
        if host in guard.ANY:
            host = socket.gethostname()
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}/?token={quote(self.token)}"

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread of its own while fewer than ``MAX_THREADS`` are
        busy; otherwise say so and close it here (the accepting thread never waits on it)."""
        if not self._slots.acquire(blocking=False):
            try:
                request.setblocking(False)
                request.send(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line, without the request (it may hold the token); the server keeps serving."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, (TimeoutError, ConnectionError)):
            sys.stderr.write(f"serve: a request failed: {type(exc).__name__}\n")


def make_server(session: Session, stages: Sequence[str] | None, host: str = "127.0.0.1",
                port: int = 8765, min_interval: float = MIN_INTERVAL_S,
                allow_hosts: Iterable[str] = ()) -> ReportServer:
    """A server for the live report (not yet serving: call ``serve_forever``); ``allow_hosts``:
    names besides the bound one that a request's ``Host`` may hold (e.g. a tunnel's)."""
    page = LivePage(session, stages, min_interval)
    page.data()  # fail now, not on the first request, if the report cannot be built
    return ReportServer(page, host, port, allow_hosts)
