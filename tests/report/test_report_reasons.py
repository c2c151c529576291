"""The report says why queued tasks wait, in a real headless Chromium: the grouped lines under
the progress table (never-clearing first, marked), the same groups in the page's data, and a
hostile hint shown as text. The reasons are steered on FakeBackend; the policed cluster test
(tests/policed/test_pending_reasons.py) checks Slurm's own reasons reach the page data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from experiments import ArtifactSet, verbs
from experiments.backends.fake import FakeBackend
from experiments.report import write_report
from experiments.states import Outlook
from tests.support.browser import need
from tests.support.experiments import FakeExecutor, Node
from tests.support.hostile import IMG_TAG as HOSTILE

need("jinja2")
By: Any = need("selenium.webdriver.common.by").By
NoAlert: Any = need("selenium.common.exceptions").NoAlertPresentException

TIME = "the gpu partition allows 12:00:00, the artifact asks 24:00:00; lower `time`"


def test_the_page_lists_why_tasks_wait(fake: FakeBackend, browser: Any, tmp_path: Path) -> None:
    ex = FakeExecutor(project="why", artifact_path=str(tmp_path / "a"), code_path=str(tmp_path))
    ex.stage("train", ArtifactSet.from_product(cls=Node, params={"i": list(range(4))}))
    session = ex.session()
    verbs.launch(session)
    fake.pend("100", reason="Priority", hint=HOSTILE)
    for i in (1, 2):
        fake.pend("100", i, reason="PartitionTimeLimit", hint=TIME, outlook=Outlook.NEVER)
    written = write_report(session, None, tmp_path / "report.html")
    browser.get(written.path.as_uri())
    items = browser.find_elements(By.CSS_SELECTOR, "#progress-body .waiting li")
    assert [(i.text, i.get_attribute("class")) for i in items] == [
        (f"2 queued: PartitionTimeLimit — {TIME} (never clears on its own) [train]", "never"),
        (f"2 queued: Priority — {HOSTILE} [train]", "clears")]
    data = json.loads(browser.find_element(By.ID, "report-data").get_attribute("textContent"))
    assert [(w["reason"], w["count"], w["never_clears"]) for w in data["waiting"]] == [
        ("PartitionTimeLimit", 2, True), ("Priority", 2, False)]
    with pytest.raises(NoAlert):
        browser.switch_to.alert  # noqa: B018 (raises when no alert is open)
    assert browser.execute_script("return window.__pwned === undefined")
