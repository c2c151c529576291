"""``serve`` on the real Slurm test cluster: a task that finishes while the page is open
changes its count without a reload, and all viewers share one scheduler query per refresh."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import run_cli, sigint_default
from tests.e2e.slurm_helpers import cancel_all, count_calls, wait_until_idle, wrap_commands
from tests.e2e.test_slurm_e2e import EXPERIMENT

from .conftest import need
from .test_report_browser import _counts

pytestmark = pytest.mark.slurm
WebDriverWait: Any = need("selenium.webdriver.support.wait").WebDriverWait


def test_live_counts_follow_slurm(tmp_path: Path, slurm_cluster: object, browser: Any) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    out = tmp_path / "out"
    out.mkdir()
    name = f"t{uuid.uuid4().hex[:8]}"
    wrapped, calls = wrap_commands(tmp_path)
    env = {"OUT": str(out), "PROJECT": name, "N_PRE": "2", "SLEEP_S": "6", **wrapped}
    proc = None
    try:
        assert run_cli(script, "launch", "pretrain", env=env).returncode == 0
        proc = subprocess.Popen([sys.executable, str(script), "serve", "pretrain", "--port", "0",
                                 "--refresh", "2"], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, **env}, cwd=tmp_path,
                                preexec_fn=sigint_default)
        line = proc.stdout.readline() if proc.stdout else ""
        url = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert url, line
        before = count_calls(calls, "squeue")
        start = time.monotonic()
        browser.get(url.group(1))
        assert _counts(browser)[("pretrain", "built")] < 2
        browser.execute_script("window.__same_page = 1")
        for _ in range(5):  # a second viewer polling as fast as it can
            urllib.request.urlopen(url.group(1) + "live", timeout=30).read()
        WebDriverWait(browser, 180, poll_frequency=1).until(
            lambda b: _counts(b)[("pretrain", "built")] == 2)
        assert browser.execute_script("return window.__same_page") == 1  # no reload
        elapsed = time.monotonic() - start
        queries = count_calls(calls, "squeue") - before
        assert queries <= elapsed / 2 + 2, (queries, elapsed)  # at most one per refresh
        browser.save_screenshot(str(tmp_path / "live-slurm.png"))
        wait_until_idle(name)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        cancel_all(name)
