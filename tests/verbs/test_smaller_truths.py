"""The smaller points of issue 24 (items 11 and 12) that need no cluster: drylaunch's printed
sbatch line, one exit code and message for a mistyped ``--where`` key in every verb, exit code
2 for definition errors and unknown stages, a misspelled requirement key in the site file,
the hints of node and reservation reasons.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, SlurmExecutor, Task
from experiments.backends.slurm import reasons
from experiments.backends.slurm.limits import parse_unusable_nodes
from experiments.cli import main as cli_main
from experiments.config import settings
from experiments.errors import ConfigError
from experiments.session import Session
from experiments.states import Outlook
from experiments.tracking.status import Live
from experiments.verbs.planning import make_plan
from tests.support.truth_world import build_all, experiment, session

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Long(Artifact):
    i: int

    def get_requirements(self) -> dict[str, object]:
        return {"time": "2:00:00", "checkpoint_before": "5:00"}

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def test_drylaunchs_sbatch_line_has_the_signal_the_script_asks_for(tmp_path: Path) -> None:
    ex = SlurmExecutor(project="sig", artifact_path=str(tmp_path / "a"), code_path=str(tmp_path))
    ex.stage("long", ArtifactSet([Long(0)]))
    s = Session.open(ex, backend="slurm")
    (group,) = make_plan(s, None, False, [], Live()).groups
    line = s.backend().describe(group, validate=False).lines[0]
    assert line.startswith("sbatch ") and "--signal=B:USR2@300" in line, line


def _run(ex: object, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli_main.run(ex, list(args))  # type: ignore[arg-type]
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_mistyped_where_key_is_one_usage_error_in_every_verb(
        tmp_path: Path, fake: object, capsys: pytest.CaptureFixture[str]) -> None:
    ex = experiment(tmp_path)
    build_all(session(ex, fake), fake)  # type: ignore[arg-type]
    for verb in (["table", "eval"], ["invalidate", "eval", "--yes"], ["logs", "eval"],
                 ["accept", "eval", "--yes"]):
        code, out = _run(ex, *verb, "--where", "num_exampels=500", capsys=capsys)
        assert code == 2, (verb, out)
        assert "--where num_exampels=500: stage 'eval' has no parameter 'num_exampels' (did " \
               "you mean 'num_examples'?)" in out, (verb, out)


def test_an_unknown_stage_and_a_definition_error_exit_2(
        tmp_path: Path, fake: object, capsys: pytest.CaptureFixture[str]) -> None:
    ex = experiment(tmp_path)
    for verb in ("status", "launch", "drylaunch", "table", "wait"):
        code, out = _run(ex, verb, "nope", capsys=capsys)
        assert code == 2 and "unknown stage 'nope'" in out, (verb, out)
    script = tmp_path / "bad.py"
    script.write_text("from experiments import SlurmExecutor\n"
                      "ex = SlurmExecutor(project='bad')\n"
                      "ex.stage('a', [])\nex.stage('a', [])\nex.auto_cli()\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for argv in ([sys.executable, str(script), "status"],
                 [sys.executable, "-m", "experiments", "--file", str(script), "status"]):
        res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120,
                             stdin=subprocess.DEVNULL)
        assert res.returncode == 2 and "stage 'a' is defined twice" in res.stderr, res
        assert "Traceback" not in res.stderr


def test_a_misspelled_requirement_key_in_the_site_file_is_named_with_its_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"default_slurm_args": {"gpu": {"tme": "1:00:00"}}}))
    site.chmod(0o644)
    monkeypatch.setenv(settings.SITE_ENV, str(site))
    with pytest.raises(ConfigError) as found:
        settings.load()
    assert str(site) in str(found.value) and "default_slurm_args.gpu.tme" in str(found.value)
    assert "did you mean 'time'" in str(found.value)
    site.write_text(json.dumps({"default_slurm_args": {"gpu": {"time": "1:00:00",
                                                               "mem_per_gpu": "8G",
                                                               "x-site-plugin": 1}}}))
    settings.load()  # real options (and one close to nothing: a plugin's) pass


NODES = ("NodeName=n1 Arch=x86_64 State=IDLE Partitions=gpu Gres=gpu:A100:8\n"
         "NodeName=n2 Arch=x86_64 State={state} Partitions=gpu Gres=gpu:A100:8\n")


def test_a_node_reason_on_healthy_nodes_clears_and_a_reservation_is_not_a_node_coming_back(
        ) -> None:
    healthy = parse_unusable_nodes(NODES.format(state="MIXED"))
    assert healthy == {"gpu": []}
    said = reasons.explain("NodeDown", unusable=healthy["gpu"])
    assert said.outlook is Outlook.CLEARS and "all up now" in said.hint
    down = parse_unusable_nodes(NODES.format(state="DOWN+NOT_RESPONDING"))["gpu"]
    said = reasons.explain("NodeDown", unusable=down)
    assert said.outlook is Outlook.UNKNOWN and "n2 (DOWN+NOT_RESPONDING)" in said.hint
    reserved = parse_unusable_nodes(NODES.format(state="IDLE+RESERVED"))["gpu"]
    said = reasons.explain("ReqNodeNotAvail, UnavailableNodes:n2", unusable=reserved)
    assert "reserved" in said.hint and "once the nodes are back" not in said.hint
    said = reasons.explain("ReqNodeNotAvail, Reserved for reservation_a")
    assert "reservation" in said.hint and "once the nodes are back" not in said.hint


def test_another_accounts_results_are_shown_as_such(
        tmp_path: Path, fake: object, capsys: pytest.CaptureFixture[str]) -> None:
    import pwd

    from experiments import paths

    ex = experiment(tmp_path)
    build_all(session(ex, fake), fake)  # type: ignore[arg-type]
    stranger = pwd.getpwnam("nobody")
    relpath = ex.stages["train"][0].relpath
    os.chown(paths.done_marker(ex.artifact_path, relpath), stranger.pw_uid, stranger.pw_gid)
    code, out = _run(ex, "status", "train", capsys=capsys)
    assert code == 1 and "1 result(s) built by other accounts (1 by nobody)" in out, out
    assert f"built by nobody: {relpath} [train]" in out and "trusted_users" in out
    doc = json.loads(_run(ex, "status", "train", "--json", capsys=capsys)[1])
    assert doc["untrusted"] == [{"stage": "train", "relpath": relpath, "owner": "nobody"}]


def test_a_failure_that_cannot_be_recorded_is_not_said_to_be(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from experiments import paths
    from experiments.tracking.logfiles import early_failure
    from experiments.worker import common as base
    from experiments.worker.build import Build, WorkerState

    monkeypatch.setattr(base, "_unrecorded", [])
    monkeypatch.setenv(base.EXIT_ZERO_ENV, "1")
    root = tmp_path / "A"
    Path(paths.status_file(str(root), "X/a")).mkdir(parents=True)  # cannot be written
    from experiments.worker.specs import SpecHeader

    header = SpecHeader("p", "s", "j", str(root), str(tmp_path))
    build = Build(header, {"relpath": "X/a"}, "7_0")
    build.status(WorkerState.FAILED, error="cannot lock X/a: Permission denied")
    assert base.scheduler_exit_code(base.EXIT_FAILED) == 0
    log = capsys.readouterr().out + capsys.readouterr().err
    assert "could not be recorded in .status.json" in log
    assert "is recorded in" not in log  # no contradiction
    (tmp_path / "task.log").write_text(log)
    reason = early_failure(tmp_path / "task.log") or ""
    assert reason.startswith("cannot lock X/a: Permission denied (and .status.json")
