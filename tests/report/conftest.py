"""The report tests' browser: a real headless Chromium (see tests/support/browser.py)."""

from __future__ import annotations

from tests.support.browser import _driver, browser, pytest_terminal_summary

__all__ = ["_driver", "browser", "pytest_terminal_summary"]
