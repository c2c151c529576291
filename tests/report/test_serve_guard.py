"""``serve`` is its owner's (issue 25): the token on loopback too, the Host header checked, a
bounded number of threads however many connections sit idle."""

from __future__ import annotations

import http.client
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments import LocalExecutor
from experiments.report import guard
from experiments.report.serve import MAX_THREADS, ReportServer, make_server
from tests.support import report_grid as g
from tests.support.browser import need

need("jinja2")


@pytest.fixture(scope="module")
def grid_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalExecutor, Path]]:
    home = tmp_path_factory.mktemp("home")
    for ex in g.launched(tmp_path_factory.mktemp("grid"), home):
        yield ex, home


def _serve(grid_home: tuple[LocalExecutor, Path], monkeypatch: pytest.MonkeyPatch,
           host: str = "127.0.0.1", allow: tuple[str, ...] = ()) -> ReportServer:
    monkeypatch.setenv("EXPERIMENTS_HOME", str(grid_home[1]))
    server = make_server(grid_home[0].session(), None, host, 0, min_interval=60,
                         allow_hosts=allow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def served(grid_home: tuple[LocalExecutor, Path],
           monkeypatch: pytest.MonkeyPatch) -> Iterator[ReportServer]:
    server = _serve(grid_home, monkeypatch)
    yield server
    server.shutdown()
    server.server_close()


def _get(server: ReportServer, path: str, host: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host or f"127.0.0.1:{server.server_address[1]}")
    for key, value in (headers or {}).items():
        conn.putheader(key, value)
    conn.endheaders()
    res = conn.getresponse()
    body = res.read()
    conn.close()
    return res.status, body, res


def test_without_the_token_nothing_is_shown_on_loopback_either(served: ReportServer) -> None:
    for path in ("/", "/report.html", "/live", "/log/1_0", "/?token=wrong"):
        status, body, _ = _get(served, path)
        assert status == 403, path
        assert b"needs its token" in body and b"pretrain" not in body and b"boom" not in body
    status, body, res = _get(served, f"/?token={served.token}")
    assert status == 200 and b"pretrain" in body
    cookie = res.getheader("Set-Cookie") or ""
    assert cookie.startswith(f"experiments-serve-{served.server_address[1]}={served.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = f"experiments-serve-{served.server_address[1]}={served.token}"
    assert _get(served, "/live", headers={"Cookie": jar})[0] == 200
    forged = jar[:-1] + ("y" if jar.endswith("x") else "x")  # one character off
    assert _get(served, "/live", headers={"Cookie": forged})[0] == 403


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:{port}",
                                  "localhost.attacker.example:{port}", "", "127.0.0.1.nip.io"])
def test_a_forged_host_is_refused_even_with_the_token(served: ReportServer, host: str) -> None:
    status, body, _ = _get(served, f"/?token={served.token}",
                           host=host.format(port=served.server_address[1]) or " ")
    assert status == 403 and b"pretrain" not in body


@pytest.mark.parametrize("host", ["localhost:{port}", "LOCALHOST", "127.0.0.1:{port}",
                                  "[::1]:{port}", "localhost.:{port}"])
def test_its_own_names_are_answered(served: ReportServer, host: str) -> None:
    status, _, _ = _get(served, f"/?token={served.token}",
                        host=host.format(port=served.server_address[1]))
    assert status == 200


def test_names_the_user_allows_are_answered(grid_home: tuple[LocalExecutor, Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    server = _serve(grid_home, monkeypatch, allow=("tunnel.lab",))
    try:
        assert _get(server, f"/?token={server.token}", host="tunnel.lab:9000")[0] == 200
        assert _get(server, f"/?token={server.token}", host="other.lab:9000")[0] == 403
    finally:
        server.shutdown()
        server.server_close()


def test_every_address_answers_to_this_machines_name() -> None:
    names = guard.allowed_names("0.0.0.0")
    assert guard.host_allowed(f"{socket.gethostname()}:8765", names)
    assert guard.host_allowed("10.1.2.3:8765", names)  # an address is no rebinding target
    assert not guard.host_allowed("evil.example:8765", names)
    assert guard.host_name("[fe80::1]:80") == "fe80::1" and guard.host_name(None) is None


def _threads_now() -> int:
    return threading.active_count()


def test_400_idle_connections_hold_a_bounded_number_of_threads(served: ReportServer) -> None:
    before = _threads_now()
    port = served.server_address[1]
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(400)]
    try:
        # Every connection beyond MAX_THREADS is told "busy" at once and closed.
        busy = _busy_answers(socks, 400 - MAX_THREADS)
        assert busy == 400 - MAX_THREADS
        assert _threads_now() - before <= MAX_THREADS
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 60  # the idle ones' threads see the close and end
    while _get(served, f"/?token={served.token}")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert _get(served, f"/?token={served.token}")[0] == 200


def _busy_answers(socks: list[socket.socket], expected: int) -> int:
    """How many of ``socks`` got the server's 503 (waiting until ``expected`` did, or 60 s)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    busy, deadline = 0, time.monotonic() + 60
    while busy < expected and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            data = sock.recv(4096)
            sel.unregister(sock)
            busy += data.startswith(b"HTTP/1.0 503")
    sel.close()
    return busy
