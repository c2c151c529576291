"""Every ``--help`` screen stays as it was: the bare command's, each verb's, and the same
through an experiment file, at a wide and a narrow terminal, against ``help_golden.txt``.

The golden file was captured from the CLI before it was split by verb family and made to load
its commands lazily (issue 22, issue 26): the verbs' one-line summaries in the top-level help
now come from a static table, and this test proves they still read exactly as click made them.
Regenerate it only on purpose: ``python -m tests.cli.test_help_golden``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pytest

from experiments.cli import main as cli_main
from experiments.experiment import Experiment

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("help_golden.txt")
VERBS = ("cancel", "cat", "config", "config show", "drylaunch", "efficiency", "gc", "history",
         "invalidate", "launch", "logs", "report", "serve", "status", "table", "wait")
WIDTHS = (80, 58)  # the formatter's widest, and narrow enough to shorten the verbs' summaries
EXPERIMENT = Experiment(project="golden", artifact_path="/nonexistent/a",
                        code_path="/nonexistent/c", stages={})


def _screens() -> Iterator[tuple[str, str, list[str]]]:
    """(door, title, argv) of every help screen: the bare command and an experiment file."""
    for door in ("experiments", "exp.py"):
        yield door, "--help", ["--help"]
        for verb in VERBS:
            yield door, f"{verb} --help", [*verb.split(), "--help"]
        if door == "experiments":
            yield door, "(no arguments)", []
            yield door, "init --help", ["init", "--help"]


def _capture(door: str, argv: list[str]) -> str:
    """What one help screen prints (stdout, then stderr) and its exit code."""
    out, err = StringIO(), StringIO()
    saved = sys.argv
    sys.argv = [door]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = (cli_main.main(argv) if door == "experiments"
                    else cli_main.run(EXPERIMENT, argv))
    finally:
        sys.argv = saved
    return f"{out.getvalue()}{err.getvalue()}[exit {code}]\n"


def render_all() -> str:
    """The whole golden text: one section per door, screen and width."""
    parts = []
    old = os.environ.get("COLUMNS")
    try:
        for width in WIDTHS:
            os.environ["COLUMNS"] = str(width)
            for door, title, argv in _screens():
                parts.append(f"=== {door} {title} (COLUMNS={width}) ===\n"
                             f"{_capture(door, argv)}")
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "".join(parts)


def _sections(text: str) -> dict[str, str]:
    """The golden text split back into its titled sections."""
    found: dict[str, str] = {}
    for chunk in text.split("=== ")[1:]:
        title, body = chunk.split(" ===\n", 1)
        found[title] = body
    return found


def test_every_help_screen_is_unchanged() -> None:
    want = _sections(GOLDEN.read_text(encoding="utf-8"))
    got = _sections(render_all())
    assert list(got) == list(want)
    for title, body in want.items():
        assert got[title] == body, f"--help changed: {title}"


def test_the_static_command_table_says_what_each_command_says() -> None:
    """The one-line helps ``--help`` lists without importing a verb are the commands' own, at
    every width; the table names each command by its own name."""
    for name, lazy in cli_main.COMMANDS.items():
        command = cli_main.cli.commands[name]
        assert command.name == name
        for limit in range(10, 130):
            assert lazy.short_help(limit) == command.get_short_help_str(limit), (name, limit)


def _subprocess_help(tmp_path: Path, *args: str) -> tuple[str, set[str]]:
    """``python exp.py ARGS`` in a real interpreter: its output and every module it imported."""
    exp = tmp_path / "exp.py"
    exp.write_text("from experiments import LocalExecutor\n"
                   "executor = LocalExecutor(project='golden', artifact_path='/nonexistent/a',"
                   " code_path='/nonexistent/c')\n"
                   "if __name__ == '__main__':\n    executor.auto_cli()\n", encoding="utf-8")
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-X", "importtime", str(exp), *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
                          stdin=subprocess.DEVNULL)
    return done.stdout + f"[exit {done.returncode}]\n", _imported(done.stderr)


def _imported(stderr: str) -> set[str]:
    """The modules ``python -X importtime`` reported on ``stderr``."""
    return {ln.rsplit("|", 1)[1].strip() for ln in stderr.splitlines()
            if ln.startswith("import time:") and "|" in ln}


HEAVY = ("experiments.verbs", "experiments.report", "experiments.backends",
         "experiments.session", "experiments.tracking", "experiments.plan", "experiments.config")


@pytest.mark.parametrize("verb", ["", "launch", "status", "cat", "table", "gc", "config"])
def test_help_from_an_experiment_file_is_the_same_and_loads_nothing_heavy(
        tmp_path: Path, verb: str) -> None:
    """Through a real ``python exp.py [VERB] --help``: today's text, and neither rich, the
    verbs, the report, the server, a backend nor another verb's module gets imported."""
    args = [*verb.split(), "--help"]
    out, modules = _subprocess_help(tmp_path, *args)
    title = f"exp.py {verb + ' ' if verb else ''}--help (COLUMNS=80)"
    assert out == _sections(GOLDEN.read_text(encoding="utf-8"))[title]
    heavy = sorted(m for m in modules if m.split(".")[0] == "rich"
                   or any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == [], f"`exp.py {' '.join(args)}` imported {heavy}"
    commands = sorted(m for m in modules if m.startswith("experiments.cli.")
                      and m.endswith("_cmd"))
    assert len(commands) == (1 if verb else 0), commands


@pytest.mark.parametrize("args, code", [(["init", "x.py"], 0), (["status"], 2),
                                         (["--file", "missing.py", "cat", "1"], 2)])
def test_plain_lines_and_errors_in_a_pipe_import_no_rich(tmp_path: Path, args: list[str],
                                                        code: int) -> None:
    """``init`` and a usage error print lines that need no markup: rich stays unloaded."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "experiments", *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == code, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    said = [ln for ln in lines if not ln.startswith("import time:")]
    assert (said[0].startswith("error: ") if code else done.stdout.startswith("Wrote x.py"))
    rich = sorted(m for m in _imported(done.stderr) if m.split(".")[0] == "rich")
    assert rich == [], rich[:3]


if __name__ == "__main__":
    GOLDEN.write_text(render_all(), encoding="utf-8")
    print(f"wrote {GOLDEN}")
