"""The bare ``experiments`` command, ``python -m experiments`` and ``init``, through real
subprocesses with no terminal (stdin closed, output captured)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import experiments
from experiments.errors import DefinitionError
from experiments.verbs.starter import write_starter

ROOT = Path(__file__).resolve().parents[2]
VERBS = ("init", "launch", "drylaunch", "status", "history", "cat", "cancel")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200",
            "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **extra}


def _command() -> list[str]:
    """The installed console script (pip install -e . puts it beside the interpreter)."""
    found = shutil.which("experiments", path=str(Path(sys.executable).parent)) \
        or shutil.which("experiments")
    assert found, "the `experiments` console script is not installed (pip install -e .)"
    return [found]


def run(*args: str, cwd: Path | None = None, module: bool = False,
        **env: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "experiments"] if module else _command()
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, cwd=cwd, env=_env(**env))


@pytest.mark.parametrize("module", [False, True], ids=["experiments", "python -m"])
def test_help_explains_the_tool_and_lists_every_verb(module: bool) -> None:
    result = run("--help", module=module)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Slurm array jobs" in out and "--file" in out and "auto_cli()" in out
    assert out.startswith("Usage: experiments ")
    commands = out.split("Commands:", 1)[1]
    for verb in VERBS:
        line = next((ln for ln in commands.splitlines() if ln.strip().startswith(verb + " ")),
                    None)
        assert line is not None and len(line.split()) > 1, f"{verb} has no one-line help"


@pytest.mark.parametrize("module", [False, True], ids=["experiments", "python -m"])
def test_version(module: bool) -> None:
    result = run("--version", module=module)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"experiments {experiments.__version__}"


def test_bare_command_without_arguments_shows_help() -> None:
    result = run()
    assert result.returncode == 0 and "Commands:" in result.stdout


def test_a_verb_without_a_file_says_how_to_name_it() -> None:
    result = run("status")
    assert result.returncode == 2
    assert "experiments --file my_experiment.py <verb>" in result.stderr


def test_verb_help_needs_no_file() -> None:
    result = run("launch", "--help")
    assert result.returncode == 0 and "--with-deps" in result.stdout


def test_init_then_launch_local_builds_every_artifact(tmp_path: Path) -> None:
    result = run("init", "x.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    launch = subprocess.run([sys.executable, "x.py", "launch", "--local"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL, env=_env())
    assert launch.returncode == 0, launch.stdout + launch.stderr
    done = sorted((tmp_path / "artifacts").rglob(".done"))
    assert len(done) == 12  # 4 trainings + 8 evaluations
    for marker in done:
        assert (marker.parent / "metrics.json").is_file(), marker.parent
    # the folder its comment names is where the result is (issue 24 item 11)
    text = (tmp_path / "x.py").read_text(encoding="utf-8")
    named = re.search(r"(artifacts/TrainedModel/\S+)-<id>/", text)
    assert named and list(tmp_path.glob(f"{named.group(1)}-*/.done")), named
    # the same file through the bare command, --file after the verb: all built already
    status = run("status", "--file", "x.py", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "train" in status.stdout and "evaluate" in status.stdout


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "mine.py"
    target.write_text("print('my own work')\n", encoding="utf-8")
    result = run("init", "mine.py", cwd=tmp_path)
    assert result.returncode != 0
    assert "mine.py" in result.stderr
    assert target.read_text(encoding="utf-8") == "print('my own work')\n"


def test_init_default_path(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == 0
    assert "python my_experiment.py launch --local" in \
        (tmp_path / "my_experiment.py").read_text(encoding="utf-8")


def test_write_starter_raises_definition_error_naming_the_file(tmp_path: Path) -> None:
    path = write_starter(tmp_path / "a.py")
    assert path == tmp_path / "a.py"
    compile(path.read_text(encoding="utf-8"), str(path), "exec")
    with pytest.raises(DefinitionError, match="a.py"):
        write_starter(tmp_path / "a.py")


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o nosort -F _experiments_completion experiments"),
    ("zsh", "#compdef experiments"),
    ("fish", "complete --no-files --command experiments"),
])
def test_completion_scripts(shell: str, marker: str) -> None:
    result = run(_EXPERIMENTS_COMPLETE=f"{shell}_source")
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout


def test_completion_completes_verbs() -> None:
    result = run(_EXPERIMENTS_COMPLETE="bash_complete", COMP_WORDS="experiments dryl",
                 COMP_CWORD="1")
    assert result.returncode == 0
    assert result.stdout.split() == ["plain,drylaunch"]


def _complete(words: str, cwd: Path) -> list[str]:
    result = run(_EXPERIMENTS_COMPLETE="bash_complete", COMP_WORDS=words,
                 COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)),
                 cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_completion_completes_stage_names_and_job_ids(tmp_path: Path) -> None:
    assert run("init", "exp.py", cwd=tmp_path).returncode == 0
    stages = _complete("experiments --file exp.py launch ", tmp_path)
    assert stages and all(s.startswith("plain,") for s in stages)
    names = [s.split(",", 1)[1] for s in stages]
    first = names[0]
    assert _complete(f"experiments --file exp.py status {first[:2]}", tmp_path) == [
        f"plain,{n}" for n in names if n.startswith(first[:2])]
    assert _complete("experiments --file exp.py cat ", tmp_path) == []  # nothing launched yet
    launched = subprocess.run([sys.executable, "exp.py", "launch", "--local"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300, env=_env())
    assert launched.returncode == 0, launched.stderr
    assert "plain,L1" in _complete("experiments --file exp.py cat L", tmp_path)
