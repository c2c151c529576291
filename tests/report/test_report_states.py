"""The report says what the other views say (issue 24 items 1 and 3), in a real headless
Chromium: after a default changed, results built with the old value are *stale* in the
progress counts, the legend says what each state means, the results table shows the value each
result was built with and marks it, the plots draw stale results hollow; a failed run into
another artifact root is no failure of this root, and the Jobs table names each job's root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from experiments import verbs
from experiments.backends.fake import FakeBackend
from experiments.report import write_report
from tests.support.browser import need
from tests.support.truth_world import build_all, experiment, record, session

need("jinja2")
By: Any = need("selenium.webdriver.common.by").By


@pytest.fixture
def page(tmp_path: Path, browser: Any) -> Any:
    fake = FakeBackend()
    build_all(session(experiment(tmp_path), fake), fake)  # built with num_examples=500
    today = experiment(tmp_path, num_examples=4000)
    for view in verbs.artifacts(session(today, fake), "eval"):
        Path(view.folder, "metrics.json").write_text(json.dumps({"acc": 0.5}))
    there = session(experiment(tmp_path, "B"), fake)  # a smoke run into another root fails
    verbs.launch(there, ["train"])
    fake.fail(record(there, "train").job_id or "", error="boom in B")
    written = write_report(session(today, fake), None, tmp_path / "report.html")
    browser.get(written.path.as_uri())
    browser.root_a = today.artifact_path  # type: ignore[attr-defined]
    browser.root_b = there.experiment.artifact_path  # type: ignore[attr-defined]
    return browser


def _count(browser: Any, stage: str, state: str) -> int:
    cell = browser.find_element(
        By.CSS_SELECTOR, f'#progress-body span.count[data-stage="{stage}"][data-state="{state}"]')
    return int(cell.text)


def test_stale_results_are_stale_on_the_page(page: Any) -> None:
    assert (_count(page, "eval", "stale"), _count(page, "eval", "built")) == (2, 0)
    assert _count(page, "board", "stale") == 1 and _count(page, "train", "built") == 2
    page.find_element(By.CSS_SELECTOR, "details.meanings summary").click()
    meaning = page.find_element(By.CSS_SELECTOR, 'details.meanings dt[data-state="stale"]')
    assert "`accept` declares it current" in meaning.find_element(
        By.XPATH, "following-sibling::dd[1]").text
    cells = page.find_elements(By.CSS_SELECTOR, 'table.results[data-stage="eval"] td.changed')
    assert [c.text for c in cells] == ["500 (now 4000)"] * 2
    states = [td.text for td in page.find_elements(
        By.CSS_SELECTOR, 'table.results[data-stage="eval"] tbody td') if td.text == "stale"]
    assert len(states) == 2
    points = page.find_elements(By.CSS_SELECTOR, '.stage-plots[data-stage="eval"] '
                                'svg[data-metric="acc"] circle.pt.stale')
    assert len(points) == 2
    title = points[0].find_element(By.TAG_NAME, "title").get_attribute("textContent")
    assert "stale: parameters differ" in title


def test_another_roots_run_is_no_failure_here_and_jobs_name_their_root(page: Any) -> None:
    failures = page.find_element(By.ID, "failures-body").text
    assert "No failed artifacts." in failures and "boom in B" not in failures
    rows = page.find_elements(By.CSS_SELECTOR, "#provenance-body table.jobs tbody tr")
    roots = {r.find_element(By.CSS_SELECTOR, "td.root").text for r in rows}
    assert roots == {page.root_a, page.root_b}
    provenance = page.find_element(By.ID, "provenance-body").text
    assert "of them stale" in provenance
