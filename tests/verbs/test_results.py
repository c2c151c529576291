"""The results API and the ``table`` verb on the local backend, end to end."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, LocalExecutor, Task
from experiments.errors import ExperimentsError
from experiments.session import Session
from experiments.tracking.status import ArtifactState as S
from tests.support.cli import run_cli

METRICS = '{"loss": %s, "eval": {"acc": %s}, "lr": 1}'


@dataclass(frozen=True)
class Pre(Artifact):
    lr: float
    epochs: int = 3  # a default: still a column

    def construct(self, builder: Task) -> None:
        if self.lr == 0.3:
            builder.run_command("echo boom; exit 7")
        else:
            text = METRICS % (self.lr * 2, 1 - self.lr)
            builder.run_command(f"echo '{text}' > {builder.directory}/metrics.json")


@dataclass(frozen=True)
class Fine(Artifact):
    base: Pre
    data: str
    metrics_file = "eval.json"  # this class writes its metrics elsewhere

    def construct(self, builder: Task) -> None:
        builder.run_command(f"echo '{{\"score\": {len(self.data)}}}' > "
                            f"{builder.directory}/eval.json")


def _executor(tmp_path: Path) -> LocalExecutor:
    pre = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2, 0.3]})
    fine = ArtifactSet.join_product(pre, ["a", "bb"]).map(lambda m, d: Fine(base=m, data=d))
    ex = LocalExecutor(project="res", artifact_path=str(tmp_path / "out"),
                       code_path=str(tmp_path), workers=2)
    ex.stage("pretrain", pre)
    ex.stage("finetune", fine)
    return ex


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalExecutor, Path]:
    import os

    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("EXPERIMENTS_HOME")
    os.environ["EXPERIMENTS_HOME"] = str(home)
    ex = _executor(tmp_path_factory.mktemp("grid"))
    ex.launch()
    yield ex, home
    if old is None:
        os.environ.pop("EXPERIMENTS_HOME", None)
    else:
        os.environ["EXPERIMENTS_HOME"] = old


@pytest.fixture
def ex(grid: tuple[LocalExecutor, Path], monkeypatch: pytest.MonkeyPatch) -> LocalExecutor:
    monkeypatch.setenv("EXPERIMENTS_HOME", str(grid[1]))
    return grid[0]


def test_views_hold_params_state_folder_provenance_and_metrics(ex: LocalExecutor) -> None:
    views = ex.artifacts("pretrain")
    assert [v.params for v in views] == [{"lr": 0.1, "epochs": 3}, {"lr": 0.2, "epochs": 3},
                                        {"lr": 0.3, "epochs": 3}]
    assert [v.state for v in views] == [S.BUILT, S.BUILT, S.FAILED]
    assert views[0].metrics == {"loss": 0.2, "eval.acc": 0.9, "lr": 1}
    assert views[2].metrics == {} and "exit" in views[2].detail and views[2].job
    assert Path(views[0].folder, ".done").exists()
    assert views[0].provenance["class"] == "Pre" and views[0].provenance["stage"] == "pretrain"
    fine = ex.artifacts("finetune", where={"base.lr": 0.3})
    assert {v.state for v in fine} == {S.DEP_FAILED} and len(fine) == 2


def test_table_columns_params_then_metrics_then_state_and_folder(ex: LocalExecutor) -> None:
    table = ex.table("pretrain")
    # the metric "lr" clashes with the parameter: it is metrics.lr
    assert table.columns == ("lr", "epochs", "loss", "eval.acc", "metrics.lr", "state", "changed",
                             "folder")
    assert table.rows[2][:6] == (0.3, 3, None, None, None, "failed")
    fine = ex.table("finetune", sort="-score", columns=["base.lr", "data", "score", "state"])
    assert fine.columns == ("base.lr", "data", "score", "state")
    assert [r[2] for r in fine.rows] == [2, 2, 1, 1, None, None]  # missing values last
    assert ex.table("finetune", ["data=bb", "base.lr=0.1"]).records()[0]["score"] == 2


def test_to_pandas_or_a_clear_error(ex: LocalExecutor) -> None:
    table = ex.table("pretrain")
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ExperimentsError, match=r"slurm-experiments\[results\]"):
            table.to_pandas()
        return
    df = table.to_pandas()
    assert list(df.columns) == list(table.columns) and df["loss"].iloc[0] == 0.2


def test_built_artifacts_are_read_without_the_scheduler(ex: LocalExecutor,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_query(self: Session, records: object) -> object:
        raise AssertionError("the scheduler was asked about built artifacts")

    monkeypatch.setattr(Session, "live", no_query)
    assert {v.state for v in ex.artifacts("pretrain", ["lr=0.1"])} == {S.BUILT}
    assert len(ex.table("finetune", {"base.lr": 0.2})) == 2


def test_unknown_where_key_names_the_parameters(ex: LocalExecutor) -> None:
    with pytest.raises(ExperimentsError, match="base.lr, data"):
        ex.table("finetune", ["lr=0.1"])


EXPERIMENT = '''
import os, sys
sys.path.insert(0, os.environ["TESTS_ROOT"])
from tests.verbs.test_results import _executor
from pathlib import Path
ex = _executor(Path(os.environ["GRID"]))
if __name__ == "__main__":
    ex.auto_cli()
'''


def test_cli_formats(ex: LocalExecutor, tmp_path: Path, repo_root: Path) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    env = {"TESTS_ROOT": str(repo_root), "GRID": str(Path(ex.artifact_path).parent)}
    res = run_cli(script, "table", "finetune", "--format", "csv", "--sort", "data",
                  "--where", "base.lr=0.1", env=env)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [(r["data"], r["score"], r["state"]) for r in rows] == [("a", "1", "built"),
                                                                    ("bb", "2", "built")]
    res = run_cli(script, "table", "pretrain", "--json", "--columns", "lr,state", env=env)
    assert json.loads(res.stdout)["rows"] == [{"lr": 0.1, "state": "built"},
                                              {"lr": 0.2, "state": "built"},
                                              {"lr": 0.3, "state": "failed"}]
    res = run_cli(script, "table", "pretrain", "--format", "markdown", env=env)
    assert res.stdout.splitlines()[0].startswith("| lr | epochs | loss |")
    res = run_cli(script, "table", "pretrain", env=env)
    assert res.returncode == 0 and "pretrain: 3 artifact(s)" in res.stdout
    bad = run_cli(script, "table", "pretrain", "--where", "nope=1", env=env)
    assert bad.returncode == 2 and "its parameters are: epochs, lr" in bad.stderr
    bad = run_cli(script, "table", "pretrain", "--columns", "lr,nope", env=env)
    assert bad.returncode == 2 and "no column 'nope'" in bad.stderr
