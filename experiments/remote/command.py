"""The command line of ``--on NAME``: what runs on the cluster and what stays on the laptop.

Taken out before the rest goes to the cluster: ``--on`` itself, ``--file`` (the laptop runs
the file to find the experiment), ``--code-path`` (a folder here: the tree shipped), and
``--artifact-path`` (a folder on the cluster, replacing the remote's ``artifact_path``). For
``report``, ``-o`` names the file written here; for ``serve``, ``--port`` and ``--host`` the
address served here. ``--local`` cannot be combined with ``--on``. Pure functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ExperimentsError

OPTION = "--on"
_GROUP_VALUED = ("--workers",)  # options before the verb that take a value


class UsageError(ExperimentsError):
    """An ``--on`` command line cannot be carried out as typed (exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Command:
    """An ``--on`` command split into its cluster and laptop parts."""

    remote: str
    verb: str
    argv: tuple[str, ...]  # for the cluster: the verb and everything else as typed
    code_path: str | None = None
    artifact_path: str | None = None
    output: str | None = None  # report: the page is written here
    serve_at: tuple[str, int] | None = None  # serve: local (host, port)


def _end(args: Sequence[str]) -> int:
    """Where options end: the first ``--`` (or the end)."""
    return args.index("--") if "--" in args else len(args)


def take(args: Sequence[str], *names: str) -> tuple[str | None, list[str]]:
    """The value of the last option among ``names`` (``--x V``, ``--x=V``, ``-oV``) and the
    arguments without it; arguments after ``--`` are left alone."""
    rest: list[str] = []
    value = None
    i, end = 0, _end(args)
    while i < len(args):
        arg = args[i]
        if i < end and arg in names:
            if i + 1 >= end:
                raise UsageError(f"{arg} needs a value")
            value, i = args[i + 1], i + 2
            continue
        long = next((n for n in names if n.startswith("--") and arg.startswith(n + "=")), None)
        short = next((n for n in names if len(n) == 2 and arg.startswith(n) and len(arg) > 2
                      and not arg.startswith("--")), None)
        if i < end and long:
            value = arg[len(long) + 1:]
        elif i < end and short:
            value = arg[2:]
        else:
            rest.append(arg)
        i += 1
    return value, rest


def split_on(args: Sequence[str]) -> tuple[str, list[str]] | None:
    """``(NAME, the other arguments)`` when ``--on NAME`` is among ``args``, else None."""
    end = _end(args)
    if not any(a == OPTION or a.startswith(OPTION + "=") for a in args[:end]):
        return None
    try:
        name, rest = take(args, OPTION)
    except UsageError:
        name = None
    if not name:
        raise UsageError("--on needs the name of a remote of config.json, e.g. --on mycluster")
    return name, rest


def _verb(args: Sequence[str]) -> str:
    """The verb: the first word that is neither an option nor a group option's value."""
    i, end = 0, _end(args)
    while i < end:
        if args[i] in _GROUP_VALUED:
            i += 2
        elif args[i].startswith("-"):
            i += 1
        else:
            return args[i]
    raise UsageError("name the verb to run on the cluster, e.g. `status --on mycluster`")


def parse(remote: str, args: Sequence[str]) -> Command:
    """Split the arguments (``--on`` already taken out) of a command for ``remote``."""
    _file, rest = take(args, "--file")
    code_path, rest = take(rest, "--code-path")
    artifact_path, rest = take(rest, "--artifact-path")
    if "--local" in rest[:_end(rest)]:
        raise UsageError("--on runs the command on the cluster; --local cannot be combined "
                         "with it (run without --on to work on this machine)")
    verb = _verb(rest)
    if verb == "init":
        raise UsageError("init writes a starter file on this machine; --on is for the verbs "
                         "that work on an experiment")
    output = serve_at = None
    if verb == "report":
        output, rest = take(rest, "-o", "--output")
        output = output or "report.html"
    elif verb == "serve":
        port, rest = take(rest, "--port")
        host, rest = take(rest, "--host")
        if port is not None and not port.isdigit():
            raise UsageError(f"--port must be a number, got {port!r}")
        serve_at = (host or "127.0.0.1", int(port) if port else 8765)
        rest = [*rest[:_end(rest)], "--port", "0", "--host", "127.0.0.1", *rest[_end(rest):]]
    return Command(remote, verb, tuple(rest), code_path, artifact_path, output, serve_at)
