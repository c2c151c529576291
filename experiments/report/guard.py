"""Who may read the live page: the holder of its token, through a name the server expects.

* **The token.** ``serve`` makes a random token at start and prints it in its URL, as notebook
  servers do, on every address (loopback too: every account on a login node can reach
  ``127.0.0.1``). A request carries it as ``?token=`` or in the cookie the server sets on the
  first request that had it (``HttpOnly``, ``SameSite=Strict``; named after the port, so two
  servers on one host keep theirs apart). Without it the answer is 403 and a page that asks for
  the token and shows nothing else. Compared in constant time; never logged.
* **The Host header.** A web page the user visits could otherwise read the page through its own
  domain name (DNS rebinding, also through an ``ssh -L`` tunnel): a request is answered only
  when its ``Host`` is an IP address, ``localhost``, the bound name, this machine's name when
  bound to every address, or a name the user allowed (``serve --allow-host``).
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

ANY = ("0.0.0.0", "::", "")

TOKEN_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; form-action 'self'">
<title>experiments: token required</title></head>
<body><p>This report needs its token: open the URL that <code>serve</code> printed (it ends
with <code>?token=...</code>), or paste the token here.</p>
<form method="get"><input name="token" type="password" autocomplete="off"
aria-label="token"> <button type="submit">Open</button></form></body></html>
"""


def cookie_name(port: int) -> str:
    """The cookie that carries the token for the server on ``port``."""
    return f"experiments-serve-{port}"


def given_token(query: str, cookie_header: str | None, port: int) -> tuple[str, bool]:
    """The token a request carries, and whether it came in the query (not the cookie)."""
    in_query = parse_qs(query).get("token", [""])[0]
    if in_query:
        return in_query, True
    if cookie_header:
        try:
            jar = SimpleCookie(cookie_header)
        except CookieError:
            return "", False
        morsel = jar.get(cookie_name(port))
        if morsel is not None:
            return morsel.value, False
    return "", False


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison of a request's token with the server's."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode())


def set_cookie(token: str, port: int) -> str:
    """The ``Set-Cookie`` value that lets the browser's next requests in without the query."""
    return f"{cookie_name(port)}={token}; Path=/; HttpOnly; SameSite=Strict"


def host_name(header: str | None) -> str | None:
    """The name in a ``Host`` header (``[::1]:8765`` gives ``::1``), lower case; None when
    there is none."""
    if not header:
        return None
    text = header.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        return text[1:end] if end > 0 else None
    return text.rsplit(":", 1)[0].rstrip(".") if text.count(":") <= 1 else text


def allowed_names(bound: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Names a ``Host`` header may hold besides IP addresses."""
    names = {"localhost", bound.strip("[]").lower(), *(n.strip().lower() for n in extra)}
    if bound in ANY:
        host = socket.gethostname().lower()
        names |= {host, host.split(".")[0]}
    return frozenset(n for n in names if n)


def host_allowed(header: str | None, names: frozenset[str]) -> bool:
    """Whether a request's ``Host`` names this server (an IP address or an allowed name)."""
    name = host_name(header)
    if name is None:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name in names
