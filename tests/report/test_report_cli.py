"""``report`` and ``serve`` through the real CLI, and the report's speed on the README grid."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from experiments.report import write_report
from experiments.session import Session
from tests.support.browser import need
from tests.support.cli import run_cli, sigint_default
from tests.support.experiments import readme_grid

need("jinja2")

EXPERIMENT = '''
import os, sys
sys.path.insert(0, os.environ["TESTS_ROOT"])
from pathlib import Path
from tests.support import report_grid as grid
ex = grid.executor(Path(os.environ["GRID"]))
if __name__ == "__main__":
    ex.auto_cli()
'''


@pytest.fixture
def script(tmp_path: Path, repo_root: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "exp.py"
    path.write_text(EXPERIMENT)
    return path, {"TESTS_ROOT": str(repo_root), "GRID": str(tmp_path)}


def test_report_exits_0_whatever_the_grid_and_links_nothing_outside(
        script: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    path, env = script
    assert run_cli(path, "launch", "pretrain", env=env).returncode == 1  # lr=1.0 fails
    res = run_cli(path, "report", "-o", str(tmp_path / "r" / "report.html"), env=env)
    assert res.returncode == 0, res.stderr
    assert re.search(r"Wrote .*report\.html \(\d+ kB in [\d.]+ s\): 6 built, 2 failed",
                     res.stdout), res.stdout
    html = (tmp_path / "r" / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "url(http" not in html and "@import" not in html
    assert "<script>alert(1)</script>" not in html  # escaped everywhere, also in the JSON


def test_serve_prints_its_url_and_stops_on_sigint(script: tuple[Path, dict[str, str]]) -> None:
    path, env = script
    proc = subprocess.Popen([sys.executable, str(path), "serve", "later", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env, "PYTHONFAULTHANDLER": "1"},
                            cwd=path.parent, preexec_fn=sigint_default)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        url = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=(\S+)", line)
        assert url, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr
                            else "")
        base, token = url.groups()
        with urllib.request.urlopen(f"{base}?token={token}", timeout=30) as res:
            assert res.status == 200 and b"later" in res.read()
        with urllib.request.urlopen(f"{base}live?token={token}", timeout=30) as res:
            live = json.loads(res.read())
        assert set(live["html"]) >= {"progress-body", "failures-body"}
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(f"{base}live", timeout=30)  # on loopback too
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=90)  # drains both pipes while it stops
        except subprocess.TimeoutExpired:  # say where it hangs: faulthandler dumps on SIGABRT
            proc.send_signal(signal.SIGABRT)
            out, err = proc.communicate(timeout=30)
            raise AssertionError(f"serve did not stop on SIGINT; its threads:\n{err}") from None
    assert proc.returncode == 0, err
    assert token not in out + err  # only the URL line, read above, held it


def test_report_of_the_built_readme_grid_asks_no_scheduler(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Every artifact built: the report is made from the files alone. (Its speed is measured
    by bench/bench_report.py, not asserted here.)"""
    ex = readme_grid(tmp_path)

    def no_scheduler(self: Session, records: object) -> object:
        raise AssertionError("the report asked a scheduler about built artifacts")

    monkeypatch.setattr(Session, "live", no_scheduler)
    written = write_report(ex.session(), None, tmp_path / "report.html")
    assert sum(s.total for s in written.data.stages) == 36


def test_without_the_extras_the_error_names_them(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments.errors import ExperimentsError
    from experiments.report import html

    ex = readme_grid(tmp_path)
    monkeypatch.setitem(sys.modules, "jinja2", None)  # import jinja2 now raises ImportError
    monkeypatch.setitem(sys.modules, "pandas", None)
    html._environment.cache_clear()
    try:
        with pytest.raises(ExperimentsError, match=r"slurm-experiments\[report\]"):
            write_report(ex.session(), None, tmp_path / "r.html")
        with pytest.raises(ExperimentsError, match=r"slurm-experiments\[results\]"):
            ex.table("pretrain").to_pandas()
    finally:
        html._environment.cache_clear()
