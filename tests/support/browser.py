"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by selenium.

Nothing downloads a browser: selenium is pointed at ``/usr/bin/chromedriver`` and
``/usr/bin/chromium``. Without them the browser tests fail under ``CI=true`` and are skipped
loudly elsewhere (``apt-get install -y chromium chromium-driver``, ``pip install selenium``).
The report tests' conftest.py takes its fixtures from here; test modules call :func:`need`.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
_skipped: list[str] = []


def _unavailable(why: str) -> None:
    """Fail (CI) or skip loudly: no browser, or no library the test module needs."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but no browser for the report tests: {why}", pytrace=False)
    _skipped.append(why)
    banner = "!" * 20 + " BROWSER TESTS SKIPPED " + "!" * 20
    pytest.skip(f"\n{banner}\n{why}\nInstall: apt-get install -y chromium chromium-driver; "
                f"pip install selenium jinja2\n{banner}", allow_module_level=True)


def need(module: str) -> Any:
    """Import ``module`` for a test module: a failure under CI=true, a loud skip elsewhere."""
    try:
        return importlib.import_module(module)
    except ImportError:
        _unavailable(f"{module} is not installed")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Repeat, at the end of the run, why browser tests were skipped."""
    if _skipped:
        terminalreporter.write_sep("!", "BROWSER TESTS WERE SKIPPED", red=True, bold=True)
        for why in dict.fromkeys(_skipped):
            terminalreporter.write_line(why, red=True)


@pytest.fixture(scope="session")
def _driver() -> Iterator[Any]:
    """One headless Chromium for the whole session."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed")
    if not (Path(CHROMEDRIVER).exists() and Path(CHROMIUM).exists()):
        _unavailable(f"no {CHROMEDRIVER} or {CHROMIUM}")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # driver.get_log("browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1800", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    except Exception as exc:  # noqa: BLE001 (any start failure means: no browser)
        _unavailable(f"chromium did not start: {exc}")
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def browser(_driver: Any, tmp_path: Path) -> Iterator[Any]:
    """The shared browser; a screenshot of the last page goes to the test's tmp folder."""
    yield _driver
    try:
        _driver.save_screenshot(str(tmp_path / "screenshot.png"))
    except Exception:  # noqa: BLE001 (a screenshot is a courtesy)
        pass


def page_counts(browser: Any) -> dict[tuple[str, str], int]:
    """The counts the page shows, read in one script call (a live swap cannot go stale)."""
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#progress-body span.count'))"
        ".map(e => [e.dataset.stage, e.dataset.state, e.textContent])")
    return {(stage, state): int(text) for stage, state, text in rows}
