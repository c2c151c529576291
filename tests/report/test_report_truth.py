"""The report says what is true in a real headless Chromium: which code made each result (the
snapshot and commit the worker recorded), whatever results and parameters a grid holds."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from experiments import Artifact, ArtifactSet, LocalExecutor, Task
from experiments.report import write_report

from .conftest import need

need("jinja2")
By: Any = need("selenium.webdriver.common.by").By


@dataclass(frozen=True)
class Made(Artifact):
    n: int

    def construct(self, builder: Task) -> None:
        builder.run_command(f"echo '{{\"score\": {self.n}}}' > {builder.directory}/metrics.json")


def _git(code: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=code,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def git_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalExecutor]:
    """A code folder that is a git checkout with one commit, and a stage built from it."""
    monkeypatch.setenv("EXPERIMENTS_HOME", str(tmp_path / "home"))
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('hi')\n")
    _git(code, "init", "-q", "-b", "main")
    _git(code, "add", "train.py")
    _git(code, "commit", "-q", "-m", "first")
    ex = LocalExecutor(project="made", artifact_path=str(tmp_path / "out"), code_path=str(code),
                       workers=2)
    ex.stage("made", ArtifactSet.from_product(cls=Made, params={"n": [1, 2]}))
    ex.launch(["made"])
    yield ex


def test_the_page_names_the_code_that_built_each_result(git_project: LocalExecutor,
                                                        browser: Any, tmp_path: Path) -> None:
    """Provenance sits under ``provenance.code`` in ``.artifact.json``: the page shows its
    snapshot and commit, not "not recorded"."""
    ex = git_project
    views = ex.artifacts("made")
    meta = json.loads(Path(views[0].folder, ".artifact.json").read_text())
    code = meta["provenance"]["code"]
    commit = _git(Path(code["live_path"]), "rev-parse", "HEAD")
    assert code["snapshot"] and code["git"]["commit"] == commit
    written = write_report(ex.session(), None, tmp_path / "report.html")
    browser.get(written.path.as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, "#provenance-body table.plain tbody tr")
    cells = [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]
    made = [c for c in cells if c[2:] == ["made", "2"]]
    assert made, cells
    assert f"snapshot {code['snapshot']}" in made[0][0]
    assert commit[:12] in made[0][0] and "main" in made[0][0]
    assert "not recorded" not in browser.find_element(By.ID, "provenance-body").text
