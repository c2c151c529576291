"""docs/states.md, "What each state means", is the one list of the states: its table says what
the code's table says (the report's legend shows the same sentences), ``status --help`` points
to it, and the JSON versions it documents are the ones the commands print."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from experiments.cli.main import cli
from experiments.tracking.meaning import MEANING
from experiments.tracking.status import JSON_VERSION

PAGE = Path(__file__).resolve().parents[2] / "docs" / "states.md"


def test_the_page_says_what_each_state_means_as_the_code_does() -> None:
    text = PAGE.read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| ([a-z -]+) \| (.+) \|$", text, re.M))
    assert {s.value: m for s, m in MEANING.items()} == {k: v for k, v in rows.items()
                                                        if k in {s.value for s in MEANING}}
    assert f"now **{JSON_VERSION}**" in text and f'"version": {JSON_VERSION}' in text


def test_status_help_points_to_the_page() -> None:
    out = CliRunner().invoke(cli, ["status", "--help"], terminal_width=200).output
    assert "docs/states.md" in out and "What each state means" in out and "--allow-stale" in out
