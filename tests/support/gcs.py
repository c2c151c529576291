"""Pytest plugin: a local Google Cloud Storage API server (gcp-storage-emulator) for tests.

Fixture ``gcs_emulator`` (session scoped) starts ``gcp-storage-emulator`` in memory on a free
port with one bucket, sets ``STORAGE_EMULATOR_HOST`` for the session (restored afterwards) and
returns a :class:`GcsEmulator`. If the emulator is not installed the test fails when ``CI=true``
and is skipped otherwise, loudly. Install it with ``pip install gcp-storage-emulator gcsfs``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

START_TIMEOUT = 20.0  # seconds until the emulator must answer
_skipped: list[str] = []


@dataclasses.dataclass(frozen=True)
class GcsEmulator:
    url: str  # http://127.0.0.1:<port>, the value of STORAGE_EMULATOR_HOST
    bucket: str  # created at start

    def objects(self, bucket: str | None = None) -> list[str]:
        """Names of all objects in ``bucket`` (default: ours), read through the JSON API."""
        names: list[str] = []
        token = ""
        while True:
            q = f"?pageToken={token}" if token else ""
            with urllib.request.urlopen(f"{self.url}/storage/v1/b/{bucket or self.bucket}/o{q}",
                                        timeout=10) as r:
                page = json.load(r)
            names += [item["name"] for item in page.get("items", [])]
            token = page.get("nextPageToken", "")
            if not token:
                return sorted(names)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _skipped:
        tr = terminalreporter
        tr.write_sep("!", "GCS TESTS WERE SKIPPED: gcp-storage-emulator is not installed",
                     red=True, bold=True)
        tr.write_line(_skipped[0], red=True)


def _executable() -> str | None:
    beside = Path(sys.executable).parent / "gcp-storage-emulator"
    return str(beside) if beside.exists() else shutil.which("gcp-storage-emulator")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(proc: subprocess.Popen, url: str, bucket: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gcp-storage-emulator exited {proc.returncode}:\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b/{bucket}/o", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"gcp-storage-emulator did not answer at {url} within {START_TIMEOUT}s")


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory):
    exe = _executable()
    if exe is None:
        msg = "gcp-storage-emulator is not installed: pip install gcp-storage-emulator gcsfs"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {msg}", pytrace=False)
        _skipped.append(msg)
        banner = "!" * 20 + " GCS TESTS SKIPPED " + "!" * 20
        pytest.skip(f"\n{banner}\n{msg}\n{banner}")
    port, bucket = _free_port(), "exp-test-bucket"
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("gcs-emulator") / "emulator.log"
    with open(log, "wb") as out:  # a file, not a pipe: an unread pipe would block the server
        proc = subprocess.Popen(
            [exe, "start", "--host=127.0.0.1", f"--port={port}", "--in-memory",
             f"--default-bucket={bucket}"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
    old = os.environ.get("STORAGE_EMULATOR_HOST")
    try:
        _wait_until_up(proc, url, bucket, log)
        os.environ["STORAGE_EMULATOR_HOST"] = url
        yield GcsEmulator(url=url, bucket=bucket)
    finally:
        if old is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = old
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
