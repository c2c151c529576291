"""The report and the live page in a real headless Chromium, on a local-backend grid with built,
failed, dependency-failed and not-started artifacts and hostile strings."""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from experiments import LocalExecutor, verbs
from experiments.report import write_report
from experiments.report.serve import ReportServer, make_server
from experiments.tracking.status import ArtifactState as S
from tests.support import report_grid as g
from tests.support.browser import need
from tests.support.browser import page_counts as _counts

need("jinja2")
By: Any = need("selenium.webdriver.common.by").By
WebDriverWait: Any = need("selenium.webdriver.support.wait").WebDriverWait
NoAlert: Any = need("selenium.common.exceptions").NoAlertPresentException


@pytest.fixture(scope="module")
def grid_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalExecutor, Path]]:
    home = tmp_path_factory.mktemp("home")
    for ex in g.launched(tmp_path_factory.mktemp("grid"), home):
        yield ex, home


@pytest.fixture
def ex(grid_home: tuple[LocalExecutor, Path], monkeypatch: pytest.MonkeyPatch) -> LocalExecutor:
    monkeypatch.setenv("EXPERIMENTS_HOME", str(grid_home[1]))
    return grid_home[0]


@pytest.fixture
def page(ex: LocalExecutor, browser: Any, tmp_path: Path) -> Any:
    written = write_report(ex.session(), None, tmp_path / "report.html")
    browser.get(written.path.as_uri())
    return browser


def _no_script_ran(browser: Any) -> None:
    with pytest.raises(NoAlert):
        browser.switch_to.alert  # noqa: B018 (raises when no alert is open)
    assert browser.execute_script("return window.__pwned === undefined")


def test_counts_match_status(ex: LocalExecutor, page: Any) -> None:
    report = verbs.status(ex.session())
    shown = _counts(page)
    for stage in report.stages:
        for state in S:
            assert shown[(stage.stage, state.value)] == stage.counts.get(state, 0), (stage, state)
        assert shown[(stage.stage, "total")] == sum(stage.counts.values())
    assert shown[("pretrain", "failed")] == 2 and shown[("finetune", "dep-failed")] == 6
    assert shown[("later", "not started")] == 2
    graph = page.find_element(By.CSS_SELECTOR, 'svg.graph g.node[data-stage="finetune"]')
    assert "18/24 built" in graph.text
    # no request left the page: styles, script and plots are inline
    assert page.execute_script("return performance.getEntriesByType('resource').length") == 0


def test_clicking_a_failed_artifact_shows_its_log(page: Any) -> None:
    failure = page.find_element(By.CSS_SELECTOR, 'details.failure[data-relpath^="Pre/lr=1.0"]')
    tail = failure.find_element(By.CSS_SELECTOR, "pre.tail")
    assert not tail.is_displayed()
    failure.find_element(By.CSS_SELECTOR, "summary").click()
    assert tail.is_displayed() and "boom at lr 1.0" in tail.text
    assert g.HOSTILE in tail.text  # a log line is text, too
    assert "exit code" in failure.text and "step 1" in failure.text
    full = failure.find_element(By.CSS_SELECTOR, "details.full-log")
    full.find_element(By.CSS_SELECTOR, "summary").click()
    assert "built" not in full.find_element(By.CSS_SELECTOR, "pre").text
    assert "FAILED at step 1" in full.find_element(By.CSS_SELECTOR, "pre").text
    _no_script_ran(page)


def _column(browser: Any, stage: str, name: str) -> list[str]:
    table = browser.find_element(By.CSS_SELECTOR, f'table.results[data-stage="{stage}"]')
    names = [th.text.rstrip(" ▲▼") for th in table.find_elements(By.CSS_SELECTOR, "th")]
    i = names.index(name)
    return [tr.find_elements(By.CSS_SELECTOR, "td")[i].text
            for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def test_sorting_by_a_metric_orders_the_rows(page: Any, tmp_path: Path) -> None:
    def header() -> Any:
        return page.find_element(By.CSS_SELECTOR,
                                 'table.results[data-stage="pretrain"] th[data-col="loss"]')

    header().click()
    values = _column(page, "pretrain", "loss")
    numbers = [float(v) for v in values if v]
    assert numbers == sorted(numbers) and len(numbers) == 6
    assert values[-2:] == ["", ""]  # the failed ones have no metric: last
    header().click()
    numbers = [float(v) for v in _column(page, "pretrain", "loss") if v]
    assert numbers == sorted(numbers, reverse=True)
    page.save_screenshot(str(tmp_path / "sorted.png"))


def test_filter_keeps_matching_rows(page: Any) -> None:
    box = page.find_element(By.CSS_SELECTOR, 'input[aria-label="filter finetune"]')
    box.send_keys("state=built base.seed=1")
    assert len(_column(page, "finetune", "data")) == 9


def test_plot_has_one_point_per_built_artifact(ex: LocalExecutor, page: Any) -> None:
    built = [v for v in ex.artifacts("pretrain") if v.state is S.BUILT]
    plot = page.find_element(By.CSS_SELECTOR, '.stage-plots[data-stage="pretrain"] '
                             'svg[data-metric="loss"][data-param="lr"]')
    points = plot.find_elements(By.CSS_SELECTOR, "circle.pt")
    assert len(points) == len(built) == 6
    assert {p.get_attribute("data-relpath") for p in points} == {v.relpath for v in built}
    title = points[0].find_element(By.TAG_NAME, "title").get_attribute("textContent")
    assert title.startswith("Pre/") and "loss = " in title  # what hovering shows
    fine = page.find_elements(By.CSS_SELECTOR, '.stage-plots[data-stage="finetune"] '
                              'svg[data-metric="score"][data-param="base.lr"] circle.pt')
    assert len(fine) == 18  # one point per built finetune


def test_hostile_parameter_runs_nothing_and_shows_as_text(page: Any) -> None:
    cells = [td.text for td in page.find_elements(
        By.CSS_SELECTOR, 'table.results[data-stage="finetune"] td')]
    assert g.HOSTILE in cells and g.HOSTILE_IMG in cells
    legend = page.find_element(By.CSS_SELECTOR, '.stage-plots[data-stage="finetune"] .plot-legend')
    assert g.HOSTILE in legend.text
    _no_script_ran(page)


# -- serve ------------------------------------------------------------------------------------
@pytest.fixture
def served(ex: LocalExecutor) -> Iterator[ReportServer]:
    server = make_server(ex.session(), None, "127.0.0.1", 0, min_interval=60)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _get(server: ReportServer, path: str, token: bool = True) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    query = f"{'&' if '?' in path else '?'}token={server.token}" if token else ""
    conn.request("GET", path + query)  # sent exactly as written: no client-side normalising
    res = conn.getresponse()
    body = res.read()
    conn.close()
    return res.status, body


def test_serve_shows_the_page_and_refuses_paths_outside(served: ReportServer, browser: Any,
                                                        ex: LocalExecutor) -> None:
    base = f"http://127.0.0.1:{served.server_address[1]}/"
    assert served.url == f"{base}?token={served.token}"
    browser.get(served.url)
    assert _counts(browser)[("pretrain", "failed")] == 2
    _no_script_ran(browser)
    for path in ("/../../etc/passwd", "/etc/passwd", "//etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                 "/log/../../../../etc/passwd", "/log/..%2f..%2f..%2fetc%2fpasswd",
                 "/report.html/../../../etc/passwd", "/log/" + "x" * 5000):
        status, body = _get(served, path)
        assert status == 404 and b"root:" not in body, path
    failed = next(v for v in ex.artifacts("pretrain") if v.state is S.FAILED)
    status, body = _get(served, f"/log/{failed.job}")
    assert status == 200 and b"boom at lr 1.0" in body
    assert served.page.refreshes == 1  # every request so far shared one scheduler query
    link = browser.find_element(By.CSS_SELECTOR, "a.raw-log")
    assert link.get_attribute("href") == f"{base}log/{failed.job}"  # no token in the page
    assert served.token not in browser.page_source


def test_serve_keeps_the_token_in_a_cookie_and_asks_for_it_otherwise(
        served: ReportServer, browser: Any, ex: LocalExecutor) -> None:
    base = f"http://127.0.0.1:{served.server_address[1]}/"
    browser.delete_all_cookies()
    browser.get(base)  # loopback, but no token: a page that asks for it, nothing else
    assert "needs its token" in browser.find_element(By.TAG_NAME, "body").text
    assert "pretrain" not in browser.page_source
    browser.find_element(By.CSS_SELECTOR, 'input[name="token"]').send_keys(served.token)
    browser.find_element(By.CSS_SELECTOR, "button").click()
    WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.ID, "progress-body"))
    assert _counts(browser)[("pretrain", "failed")] == 2
    browser.get(base)  # the cookie carries the token from now on
    assert _counts(browser)[("pretrain", "built")] == 6
    cookie = browser.get_cookie(f"experiments-serve-{served.server_address[1]}")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    failure = browser.find_element(By.CSS_SELECTOR, 'details.failure[data-relpath^="Pre/lr=1.0"]')
    failure.find_element(By.CSS_SELECTOR, "summary").click()
    failure.find_element(By.CSS_SELECTOR, "a.raw-log").click()  # the raw log, by the cookie
    assert "boom at lr 1.0" in browser.find_element(By.TAG_NAME, "body").text
    assert "/log/" in browser.current_url and "token" not in browser.current_url
    browser.delete_all_cookies()


def test_serve_on_every_address_needs_the_token_too(ex: LocalExecutor, browser: Any) -> None:
    server = make_server(ex.session(), ["pretrain"], "0.0.0.0", 0, min_interval=60)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert server.token and f"?token={server.token}" in server.url
        assert _get(server, "/", token=False)[0] == 403
        assert _get(server, "/?token=wrong", token=False)[0] == 403
        assert _get(server, "/live", token=False)[0] == 403
        assert _get(server, "/")[0] == 200
        assert _get(server, "/../../etc/passwd")[0] == 404
        port = server.server_address[1]
        browser.delete_all_cookies()
        browser.get(f"http://127.0.0.1:{port}/?token={server.token}")
        assert _counts(browser)[("pretrain", "built")] == 6
        browser.delete_all_cookies()
        browser.get(f"http://127.0.0.1:{port}/")
        assert "needs its token" in browser.find_element(By.TAG_NAME, "body").text
    finally:
        server.shutdown()
        server.server_close()


def test_live_page_changes_counts_without_a_reload(tmp_path: Path, browser: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("EXPERIMENTS_HOME", str(home))
    ex = g.executor(tmp_path)
    server = make_server(ex.session(), ["later"], "127.0.0.1", 0, min_interval=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(server.url)
        assert _counts(browser)[("later", "not started")] == 2
        browser.execute_script("window.__same_page = 1")
        ex.launch(["later"])  # the tasks finish while the page is open
        WebDriverWait(browser, 30).until(lambda b: _counts(b)[("later", "built")] == 2)
        assert browser.execute_script("return window.__same_page") == 1  # no reload
        assert len(_column(browser, "later", "n")) == 2
        assert _column(browser, "later", "state") == ["built", "built"]
        browser.save_screenshot(str(tmp_path / "live.png"))
    finally:
        server.shutdown()
        server.server_close()


def test_screenshot_of_the_report(page: Any, tmp_path: Path) -> None:
    """The picture in README and docs/report.md is made here:
    ``REPORT_SCREENSHOT=docs/img/report.png pytest tests/report -k screenshot``."""
    page.set_window_size(1200, 1000)
    page.find_element(By.CSS_SELECTOR, 'details.failure[data-relpath^="Pre/lr=1.0"] summary'
                      ).click()
    page.save_screenshot(str(tmp_path / "report.png"))
    target = os.environ.get("REPORT_SCREENSHOT")
    if target:
        Path(target).write_bytes((tmp_path / "report.png").read_bytes())
    page.set_window_size(1400, 1800)
    assert (tmp_path / "report.png").stat().st_size > 10_000
