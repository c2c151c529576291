"""The report says what is true, in a real headless Chromium: which code made each result (the
snapshot and commit the worker recorded), whatever results and parameters a grid holds (a
metrics file nested 300 000 deep, metrics named like the table's columns, parameter values named
like JavaScript's Object members); ``table`` and ``serve`` survive the same grid."""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from experiments import Artifact, ArtifactSet, LocalExecutor, Task
from experiments.report import write_report
from experiments.report.serve import make_server
from experiments.tracking.status import ArtifactState as S
from tests.support import hostile_grid as hg
from tests.support.browser import need

need("jinja2")
By: Any = need("selenium.webdriver.common.by").By
WebDriverWait: Any = need("selenium.webdriver.support.wait").WebDriverWait


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
    made = [c for c in cells if c[2:4] == ["made", "2"]]
    assert made, cells
    assert f"snapshot {code['snapshot']}" in made[0][0]
    assert commit[:12] in made[0][0] and "main" in made[0][0]
    assert "not recorded" not in browser.find_element(By.ID, "provenance-body").text


# -- hostile results (issue 24 item 9) --------------------------------------------------------
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[LocalExecutor, dict[str, str]]]:
    """The hostile grid with ``odd`` launched (``later`` is left for the live page)."""
    root = tmp_path_factory.mktemp("hostile")
    env = {"EXPERIMENTS_HOME": str(root / "home"), "HOSTILE_ROOT": str(root)}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        ex = hg.executor(root)
        ex.launch(["odd"])
        yield ex, env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.support.hostile_grid", *args], cwd=REPO,
                          env={**os.environ, **env, "COLUMNS": "200"}, capture_output=True,
                          text=True, timeout=300)


def _deep(ex: LocalExecutor) -> Any:
    return next(v for v in ex.artifacts("odd") if v.params["name"] == "deep")


def test_table_keeps_the_tools_columns_and_notes_what_it_cannot_read(
        hostile: tuple[LocalExecutor, dict[str, str]]) -> None:
    ex, env = hostile
    res = _cli(env, "table", "odd", "--format", "csv")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert f"{_deep(ex).relpath}: metrics.json nests deeper than" in res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    header = res.stdout.splitlines()[0].split(",")
    assert header.count("state") == 1 and header.count("folder") == 1
    assert {"metrics.state", "metrics.folder", "__proto__", "constructor"} <= set(header)
    states = {r["name"]: r["state"] for r in rows}
    assert states["fail"] == "failed" and states["deep"] == "built"
    assert all(r["folder"].startswith(str(ex.artifact_path)) for r in rows)
    as_json = json.loads(_cli(env, "table", "odd", "--json").stdout)
    assert {r["name"]: r["state"] for r in as_json["rows"]} == states
    assert all(r["metrics.state"] in ("built", None) for r in as_json["rows"])


def test_report_and_serve_survive_a_deeply_nested_metrics_file(
        hostile: tuple[LocalExecutor, dict[str, str]], tmp_path: Path) -> None:
    ex, env = hostile
    res = _cli(env, "report", "-o", str(tmp_path / "r.html"))
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert "nests deeper than" in res.stderr
    assert "nests deeper than" in (tmp_path / "r.html").read_text()
    server = make_server(ex.session(), None, "127.0.0.1", 0, min_interval=60)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for path in ("/", "/live"):
            conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
            conn.request("GET", f"{path}?token={server.token}")
            answer = conn.getresponse()
            assert answer.status == 200 and b"nests deeper than" in answer.read(), path
            conn.close()
    finally:
        server.shutdown()
        server.server_close()


def _page_errors(browser: Any) -> list[str]:
    """What the page's script threw (console errors), and sections it could not draw."""
    logs = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    hints = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".hint.error")]
    return logs + hints


def _plotted(browser: Any, stage: str, metric: str, param: str) -> set[str]:
    points = browser.find_elements(By.CSS_SELECTOR, f'.stage-plots[data-stage="{stage}"] '
                                   f'svg[data-metric="{metric}"][data-param="{param}"] circle.pt')
    return {p.get_attribute("data-relpath") for p in points}


def test_page_script_draws_whatever_the_names_and_values(
        hostile: tuple[LocalExecutor, dict[str, str]], browser: Any, tmp_path: Path) -> None:
    ex, _env = hostile
    written = write_report(ex.session(), None, tmp_path / "report.html")
    browser.get_log("browser")  # start from a clean console
    browser.get(written.path.as_uri())
    assert _page_errors(browser) == []
    views = ex.artifacts("odd")
    built = {v.relpath for v in views if v.state is S.BUILT and "acc" in v.metrics}
    assert len(built) == 2 * (len(hg.NAMES) - 2)  # all but the deep and the failed ones
    assert _plotted(browser, "odd", "acc", "name") == built  # never the failed one
    cells = [td.text for td in browser.find_elements(
        By.CSS_SELECTOR, 'table.results[data-stage="odd"] td')]
    assert {"__proto__", "constructor", "<script>alert(1)</script>"} <= set(cells)
    assert browser.execute_script("return ({}).ys === undefined && window.__pwned === undefined")


def test_live_page_keeps_refreshing_with_hostile_names(
        hostile: tuple[LocalExecutor, dict[str, str]], browser: Any) -> None:
    ex, _env = hostile
    server = make_server(ex.session(), None, "127.0.0.1", 0, min_interval=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get_log("browser")
        browser.get(server.url)
        browser.execute_script("window.__same_page = 1")
        assert _plotted(browser, "later", "n2", "n") == set()
        ex.launch(["later"])  # the page is open while these finish
        WebDriverWait(browser, 60).until(lambda b: len(_plotted(b, "later", "n2", "n")) == 3)
        assert browser.execute_script("return window.__same_page") == 1
        assert _page_errors(browser) == []
        assert len(_plotted(browser, "odd", "acc", "name")) == 2 * (len(hg.NAMES) - 2)
    finally:
        server.shutdown()
        server.server_close()
