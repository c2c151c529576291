"""``serve`` over a scheduler's jobs, on FakeBackend in a real headless Chromium: a task that the
scheduler finishes while the page is open changes its count without a reload, and however many
viewers poll, each refresh of the page's data asks the scheduler once at most.

The live page is ours (report/serve.py); test_report_browser.py runs it over the local backend.
"""

from __future__ import annotations

import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments import Artifact, ArtifactSet, LocalExecutor, Task, verbs
from experiments.backends.fake import FakeBackend
from experiments.report.serve import make_server
from experiments.session import Session


@dataclass(frozen=True)
class Pre(Artifact):
    lr: float

    def construct(self, builder: Task) -> None:
        builder.run_command(f"echo trained {self.lr}")


def _counts(browser: Any) -> dict[tuple[str, str], int]:
    """The counts the page shows, read in one script call (a live swap cannot go stale)."""
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#progress-body span.count'))"
        ".map(e => [e.dataset.stage, e.dataset.state, e.textContent])")
    return {(stage, state): int(text) for stage, state, text in rows}


def test_live_counts_follow_the_scheduler_with_one_query_per_refresh(
        tmp_path: Path, browser: Any) -> None:
    # the browser fixture has checked that selenium is there (or failed under CI=true)
    from selenium.webdriver.support.wait import WebDriverWait

    ex = LocalExecutor(project="served", artifact_path=str(tmp_path / "out"),
                       code_path=str(tmp_path))
    ex.stage("pretrain", ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2]}))
    fake = FakeBackend()
    session = Session.open(ex, backend="fake", instances={"fake": fake})
    [job] = [r.job_id or "" for r in verbs.launch(session).records]
    server = make_server(session, ["pretrain"], "127.0.0.1", 0, min_interval=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(server.url)
        assert _counts(browser)[("pretrain", "queued")] == 2
        browser.execute_script("window.__same_page = 1")
        server.page.min_interval = 3600.0  # no refresh is due: every viewer shares the data
        queries, refreshes = fake.calls["query"], server.page.refreshes
        url = urllib.parse.urlsplit(server.url)  # its query carries the token, if any
        live = urllib.parse.urlunsplit((url.scheme, url.netloc, "/live", url.query, ""))
        for _ in range(5):  # a second viewer polling as fast as it can
            urllib.request.urlopen(live, timeout=30).read()
        assert (server.page.refreshes, fake.calls["query"]) == (refreshes, queries)
        server.page.min_interval = 1.0
        fake.finish(job)  # the tasks end while the page is open
        WebDriverWait(browser, 60, poll_frequency=0.5).until(
            lambda b: _counts(b).get(("pretrain", "built")) == 2)
        assert browser.execute_script("return window.__same_page") == 1  # no reload
        assert server.page.refreshes > refreshes
        assert fake.calls["query"] - queries <= server.page.refreshes - refreshes
        browser.save_screenshot(str(tmp_path / "live-fake.png"))
    finally:
        server.shutdown()
        server.server_close()
