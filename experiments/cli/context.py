"""What every command shares: the CLI state, usage problems, exit codes, shell completion.

Imported by ``main`` and by every command module, so it stays cheap: click, the error types
and the experiment record; the session, the store and the configuration load inside the
functions that need them (``--help`` runs none of them). Imports no command module.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import _registry
from ..errors import ExperimentsError
from ..experiment import Experiment, as_experiment

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from ..session import Session
    from ..verbs.wait import Outcome

EXIT_OK = 0
EXIT_FAILED = 1  # something failed, is not built, or an ExperimentsError
EXIT_USAGE = 2  # the command line cannot be carried out as typed
EXIT_LIVE = 3  # something is still queued or running (or `wait` timed out)
EXIT_STALE = 5  # all built, but some results are stale (`--allow-stale` accepts them)
EXIT_INTERRUPTED = 130  # Ctrl-C
_OUTCOME_CODES = {"built": EXIT_OK, "stale": EXIT_STALE, "failed": EXIT_FAILED,
                  "live": EXIT_LIVE, "timed out": EXIT_LIVE}


def outcome_code(outcome: Outcome) -> int:
    """The exit code of ``status`` and ``wait`` for where the artifacts stand."""
    return _OUTCOME_CODES[outcome.value]


class UsageProblem(ExperimentsError):
    """The command line cannot be carried out as typed (exit code 2)."""


class CliState:
    """The experiment (given, or loaded from --file on first use), the global options and the
    arguments as typed (``launch --detach`` runs them again)."""

    def __init__(self, experiment: Experiment | None, file: str | None,
                 opts: dict[str, Any], argv: tuple[str, ...] = ()) -> None:
        self._experiment = experiment
        self.file = file
        self.opts = {k: v for k, v in opts.items() if v is not None}
        self.argv = argv

    def experiment(self) -> Experiment:
        """The experiment, loading the --file on first use."""
        if self._experiment is None:
            self._experiment = load_experiment(self.file)
        return self._experiment

    def session(self, **opts: Any) -> Session:
        """A session with the global options, overridden by the verb's own."""
        from ..session import Session

        merged = {**self.opts, **{k: v for k, v in opts.items() if v is not None}}
        ex = self.experiment().with_paths(merged.get("artifact_path"), merged.get("code_path"))
        return Session.open(ex, backend="local" if merged.get("local") else None,
                            workers=merged.get("workers"))


def load_experiment(file: str | None) -> Experiment:
    """Run an experiment file and return what the last executor it created describes."""
    if file is None:
        raise UsageProblem("name the experiment file: experiments --file my_experiment.py "
                           "<verb>")
    if not Path(file).is_file():
        raise UsageProblem(f"experiment file {file} does not exist")
    before = len(_registry.created())
    sys.path.insert(0, str(Path(file).resolve().parent))
    try:
        runpy.run_path(file, run_name="__experiments__")
    except ExperimentsError as exc:
        again = ExperimentsError(f"{file}: {exc}")
        again.exit_code = getattr(exc, "exit_code", EXIT_FAILED)  # type: ignore[attr-defined]
        raise again from None
    made = _registry.created()[before:]
    if not made:
        raise UsageProblem(f"{file} defines no executor; create a SlurmExecutor or "
                           "LocalExecutor at module level")
    return as_experiment(made[-1])


def can_ask() -> bool:
    """True when someone is at a terminal to answer a question (never in a pipe or a job)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def _completion_experiment(ctx: click.Context) -> Experiment | None:
    """The experiment while the shell completes a word (no command callback has run yet)."""
    root = ctx.find_root()
    given = getattr(root.command, "experiment", None)
    if given is not None:
        return given  # type: ignore[no-any-return]
    file = root.params.get("file")
    try:
        return load_experiment(file) if file else None
    except Exception:  # a broken file completes nothing rather than printing a traceback
        return None


def complete_stages(ctx: click.Context, param: click.Parameter,
                    incomplete: str) -> list[CompletionItem]:
    """Stage names of the experiment, for shell completion."""
    from click.shell_completion import CompletionItem

    ex = _completion_experiment(ctx)
    return [CompletionItem(s) for s in (ex.stages if ex else ()) if s.startswith(incomplete)]


def complete_jobs(ctx: click.Context, param: click.Parameter,
                  incomplete: str) -> list[CompletionItem]:
    """Tracked job ids of the experiment's project, newest first, for shell completion."""
    from click.shell_completion import CompletionItem

    from ..config import settings as config_mod
    from ..tracking.store import Store

    ex = _completion_experiment(ctx)
    if ex is None:
        return []
    try:
        records = Store(config_mod.home(), ex.project).all_records()
    except ExperimentsError:
        return []
    ids = [r.job_id for r in reversed(records) if r.job_id]
    return [CompletionItem(i) for i in dict.fromkeys(ids) if i.startswith(incomplete)]
