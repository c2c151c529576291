"""``report`` and ``serve`` through the real CLI, and the report's speed on the README grid."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, SlurmExecutor, paths
from experiments.report import write_report
from experiments.session import Session
from tests.e2e.helpers import run_cli, sigint_default

from .conftest import need

need("jinja2")

EXPERIMENT = '''
import os, sys
sys.path.insert(0, os.environ["TESTS_ROOT"])
from pathlib import Path
from tests.report import grid
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
                            env={**os.environ, **env}, cwd=path.parent,
                            preexec_fn=sigint_default)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        url = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert url, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr
                            else "")
        with urllib.request.urlopen(url.group(1), timeout=30) as res:
            assert res.status == 200 and b"later" in res.read()
        with urllib.request.urlopen(url.group(1) + "live", timeout=30) as res:
            live = json.loads(res.read())
        assert set(live["html"]) >= {"progress-body", "failures-body"}
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


# -- the README's 36-artifact grid --------------------------------------------------------------
@dataclass(frozen=True)
class PretrainedModel(Artifact):
    learning_rate: float
    num_epochs: int

    def get_requirements(self) -> dict[str, object]:
        return {"partition": "gpu", "gpus": "A100:4", "cpus": 8, "time": "24:00:00"}


@dataclass(frozen=True)
class FinetunedModel(Artifact):
    base_model: PretrainedModel
    dataset: str


def readme_grid(root: Path, factor: int = 1) -> SlurmExecutor:
    """The README's quick start (12 pretrained, 24 finetuned), every artifact built with
    metrics; ``factor`` multiplies the learning rates swept."""
    lrs = [10 ** -(1 + i / factor) for i in range(3 * factor)]
    pre = ArtifactSet.from_product(cls=PretrainedModel, params={
        "learning_rate": lrs, "num_epochs": [10, 20, 50, 100]})
    fine = ArtifactSet.join_product(pre, ["squad", "glue"]).map(
        lambda m, d: FinetunedModel(base_model=m, dataset=d))
    ex = SlurmExecutor(project="readme", artifact_path=str(root / "out"), code_path=str(root))
    ex.stage("pretrain", pre)
    ex.stage("finetune", fine)
    for i, art in enumerate([*pre, *fine]):
        folder = Path(paths.artifact_dir(ex.artifact_path, art.relpath))
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"loss": 1 / (i + 1), "acc": i % 7}))
        (folder / ".done").write_text("{}")
    return ex


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
