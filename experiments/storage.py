"""Copy files and directories to and from remote storage (gs://, s3://, file://, memory://...).

The worker runs storage steps with `upload`/`download`; planning calls `check_url`. fsspec (and
gcsfs) are imported inside the functions, so importing this module stays cheap. Transient errors
are retried here, logged; gcsfs's own silent retries (~30 s of sleeping) are switched off.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from .errors import DefinitionError, StorageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from fsspec import AbstractFileSystem

GCS_EXTRA = "pip install 'slurm-experiments[gcs]'"
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*)://(.*)", re.S)
_GCS = ("gs", "gcs")
_LOCAL = ("file", "local")
_ONE_SHOT: type[AbstractFileSystem] | None = None  # gcsfs's core class minus its retries


def check_url(url: str) -> None:
    """Fail at planning time, with a how-to-fix message, if ``url`` is malformed or the
    package for its protocol is not installed (so jobs do not fail on the compute node)."""
    try:
        protocol = _parse(url)
    except ValueError as exc:
        raise DefinitionError(str(exc)) from None
    gcs = protocol in _GCS
    try:
        import fsspec

        if gcs:
            _import_gcsfs()
        else:
            fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        if gcs or exc.name == "fsspec":
            raise DefinitionError(f"{url!r} needs packages that are not installed ({exc}); run: "
                                  f"{GCS_EXTRA if gcs else 'pip install fsspec'}") from None
        raise DefinitionError(f"{url!r}: support for {protocol}:// is not installed ({exc}); "
                              "install it where the jobs run") from None
    except ValueError:
        raise DefinitionError(f"{url!r}: unknown storage protocol {protocol!r}; use one fsspec "
                              "knows, e.g. gs://, s3://, az://, file:///abs/path") from None


def upload(src: str, url: str, *, log: TextIO | None = None, retries: int = 3,
           backoff_s: float = 0.5) -> None:
    """Copy the file or directory ``src`` to ``url``; a directory's files land under ``url/``
    with their layout kept, whether or not that prefix exists yet (no fsspec ``put`` nesting).
    A file goes to ``url`` itself, or to ``url<basename>`` when ``url`` ends with '/'."""

    def attempt() -> str:
        fs, root = _filesystem(url)
        if not os.path.exists(src):
            raise FileNotFoundError(f"local path {src} does not exist")
        if os.path.isdir(src):
            rels = sorted(os.path.relpath(os.path.join(d, f), src).replace(os.sep, "/")
                          for d, _, files in os.walk(src) for f in files)
            lpaths = [os.path.join(src, rel) for rel in rels]
            rpaths = [f"{root.rstrip('/')}/{rel}" for rel in rels]
        else:
            name = os.path.basename(src) if url.endswith("/") else ""
            lpaths, rpaths = [src], [f"{root.rstrip('/')}/{name}" if name else root]
        if lpaths:
            fs.put(lpaths, rpaths)
        return f"{len(lpaths)} file(s), {sum(os.path.getsize(p) for p in lpaths)} bytes"

    _with_retries(f"upload {src} -> {url}", attempt, log, retries, backoff_s)


def download(url: str, dst: str, *, log: TextIO | None = None, retries: int = 3,
             backoff_s: float = 0.5) -> None:
    """Copy the object or prefix ("directory") ``url`` to the local path ``dst``, replacing it.
    Atomic: data goes to a temporary name beside ``dst`` and is renamed into place only when
    complete, so an interrupted download never leaves a partial file or tree at ``dst``."""
    dst = os.path.abspath(dst)

    def attempt() -> str:
        fs, root = _filesystem(url)
        kind = fs.info(root).get("type")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        tmp = _temp_name(dst, "part")
        try:
            if kind == "directory":
                n = _get_tree(fs, root, tmp)
            else:
                fs.get_file(root, tmp)
                n = 1
            _install(tmp, dst)
        except BaseException:
            _remove(tmp)
            raise
        return f"{n} file(s)"

    _with_retries(f"download {url} -> {dst}", attempt, log, retries, backoff_s)


def _parse(url: str) -> str:
    """The protocol of a storage URL; ValueError saying how to write it otherwise."""
    m = _SCHEME.fullmatch(url) if isinstance(url, str) else None
    if not m:
        raise ValueError(f"{url!r:.100} is not a storage URL; write it as scheme://bucket/path "
                         "with a lowercase scheme, e.g. gs://my-bucket/models/run1")
    protocol, rest = m.groups()
    if protocol in _LOCAL and not rest.startswith("/"):
        raise ValueError(f"{url!r}: a {protocol}:// URL needs an absolute path, "
                         f"e.g. {protocol}:///data/out")
    if protocol not in _LOCAL and not rest.split("/", 1)[0]:
        raise ValueError(f"{url!r} names no bucket; write it as {protocol}://bucket/path")
    return protocol


def _emulator() -> bool:
    return os.environ.get("STORAGE_EMULATOR_HOST", "") not in ("", "default")


def _import_gcsfs() -> Any:
    """Import gcsfs; with an emulator, first turn off its gRPC bucket-type probe (which
    costs a 60 s timeout per bucket against an emulator) unless the user chose otherwise."""
    if _emulator():
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    import logging

    import gcsfs
    import gcsfs.core

    log = logging.getLogger("gcsfs")  # no stderr traceback per failed request (lastResort)
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    return gcsfs


def _gcs_class() -> type[AbstractFileSystem]:
    """gcsfs's core filesystem class minus its internal retries. Not gcsfs's default class:
    that "experimental" one adds a gRPC bucket-type probe (60 s timeouts against an emulator,
    or where gRPC egress is blocked) and wraps the retrying methods where we cannot reach."""
    global _ONE_SHOT
    if _ONE_SHOT is None:
        gcsfs = _import_gcsfs()
        from gcsfs.retry import retry_request

        base = gcsfs.core.GCSFileSystem
        names = ("_request", "_get_file_request", "_get_file_concurrent")
        inner = {n: getattr(getattr(base, n, None), "__wrapped__", None) for n in names}
        attrs = {n: retry_request(retries=1)(f) for n, f in inner.items() if f is not None}
        _ONE_SHOT = type("OneShotGCSFileSystem", (base,), attrs)
    return _ONE_SHOT


def _filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """A fresh filesystem for ``url`` (no stale listing cache) and the path within it."""
    protocol = _parse(url)
    opts: dict[str, Any] = {"skip_instance_cache": True}
    cls: type[AbstractFileSystem]
    if protocol in _GCS:
        cls = _gcs_class()
        if _emulator():
            opts["token"] = "anon"
    else:
        import fsspec

        cls = fsspec.get_filesystem_class(protocol)
        if protocol in _LOCAL:
            opts["auto_mkdir"] = True
    return cls(**opts), cls._strip_protocol(url)


def _get_tree(fs: AbstractFileSystem, root: str, tmp: str) -> int:
    """Download every object under ``root`` into the new directory ``tmp``; the file count."""
    prefix = root.rstrip("/") + "/"
    found = {r[len(prefix):]: r for r in fs.find(root) if r.startswith(prefix)}
    rels = {rel: r for rel, r in sorted(found.items()) if rel and not rel.endswith("/")}
    for rel in rels:  # (no folder placeholders) each must map to a distinct, safe local file
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts) or any(
                "/".join(parts[:i]) in rels for i in range(1, len(parts))):
            raise ValueError(f"object {prefix}{rel} cannot be a local file: no safe name, or "
                             "another object has its name as a folder")
    rpaths = list(rels.values())
    lpaths = [os.path.join(tmp, *rel.split("/")) for rel in rels]
    os.mkdir(tmp)
    for d in {os.path.dirname(p) for p in lpaths}:
        os.makedirs(d, exist_ok=True)
    if rpaths:
        fs.get(rpaths, lpaths)
    return len(rpaths)


def _temp_name(path: str, tag: str) -> str:
    d, base = os.path.split(path)
    return os.path.join(d, f".{base}.{tag}-{os.getpid()}-{os.urandom(4).hex()}")


def _install(tmp: str, dst: str) -> None:
    """Rename a finished download to ``dst``; an existing directory there is swapped out."""
    if os.path.lexists(dst) and (os.path.isdir(tmp) or os.path.isdir(dst)):
        old = _temp_name(dst, "old")
        os.replace(dst, old)
        try:
            os.replace(tmp, dst)
        except BaseException:
            os.replace(old, dst)
            raise
        _remove(old)
    else:
        os.replace(tmp, dst)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def _transient(exc: BaseException) -> bool:
    """Worth retrying: connection errors, timeouts, HTTP 408/429/5xx (not 'not found' etc.)."""
    import asyncio

    if isinstance(exc, (FileNotFoundError, PermissionError, FileExistsError, IsADirectoryError,
                        NotADirectoryError, ValueError, ImportError)):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return True
    status = getattr(exc, "status", None) or getattr(exc, "code", None)
    if isinstance(status, int) and (status in (408, 429) or 500 <= status < 600):
        return True
    retry = sys.modules.get("gcsfs.retry")  # aiohttp/requests errors, checksum mismatches
    return bool(retry is not None and retry.is_retriable(exc))


def _hint(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return " (not found: check the URL and the local path)"
    if isinstance(exc, PermissionError) or "Forbidden" in str(exc) or \
            getattr(exc, "code", None) in (401, 403):
        return (" (access denied: check the credentials, e.g. GOOGLE_APPLICATION_CREDENTIALS or "
                "`gcloud auth application-default login`, and the bucket's permissions)")
    if isinstance(exc, ImportError):
        return f" (install the storage packages where the jobs run: {GCS_EXTRA})"
    return ""


def _with_retries(what: str, action: Callable[[], str], log: TextIO | None, retries: int,
                  backoff_s: float) -> None:
    """Run ``action`` until it succeeds, retrying transient errors with exponential backoff
    (jittered, so the tasks of an array job do not retry in lockstep); StorageError at the end."""
    attempts = max(0, retries) + 1
    for n in range(1, attempts + 1):
        _say(log, f"{what}: attempt {n}/{attempts}")
        t0 = time.monotonic()
        try:
            summary = action()
        except Exception as exc:
            err = f"{type(exc).__name__}: {exc}"
            transient = _transient(exc)
            if transient and n < attempts:
                delay = max(0.0, backoff_s) * 2 ** (n - 1) * random.uniform(0.5, 1.5)
                _say(log, f"{what}: attempt {n}/{attempts} failed (transient): {err}; "
                          f"retrying in {delay:.2f}s")
                time.sleep(delay)
                continue
            why = "transient, out of retries" if transient else "not retried"
            _say(log, f"{what}: attempt {n}/{attempts} failed ({why}): {err}")
            raise StorageError(f"{what} failed after {n} attempt(s) ({why}): "
                               f"{err}{_hint(exc)}") from exc
        _say(log, f"{what}: done in {time.monotonic() - t0:.2f}s ({summary})")
        return


def _say(log: TextIO | None, line: str) -> None:
    if log is not None:
        log.write(f"[storage] {line}\n")
        log.flush()
