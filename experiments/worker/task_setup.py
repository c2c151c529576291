"""Task setup: shell lines (``module load cuda``, ``source venv/bin/activate``) run before a
task's work — in the batch script before the worker on Slurm, before each command locally.

They come from three places, run in this order: ``setup`` at the top of ``config.json`` (every
partition), ``setup`` inside a partition's entry of ``default_slurm_args`` (that partition),
and the executor's ``setup=`` argument. Each line is the user's own shell code and runs as
written; after each one a check stops the task, naming the line, when it fails — a task must
not run without the environment it asked for. Standard library only (the worker uses it).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

KEY = "setup"


def check_lines(value: object, where: str) -> tuple[str, ...]:
    """``value`` as a tuple of setup lines; ValueError (naming ``where``) if it is not a list
    of one-line strings."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: setup must be a list of shell lines, e.g. "
                         '["module load cuda/12.1", "source ~/venv/bin/activate"]')
    for line in value:
        if not isinstance(line, str) or not line.strip() or any(c in line for c in "\n\r\x00"):
            raise ValueError(f"{where}: setup line {line!r:.80} must be one non-empty line of "
                             "shell")
    return tuple(value)


def prelude(lines: Sequence[str]) -> list[str]:
    """The shell text for ``lines``: each line, then a check that ends the task if it failed."""
    out: list[str] = []
    for n, line in enumerate(lines, 1):
        said = shlex.quote(f"experiments: setup line {n} failed: {line}")
        out += [line, f'__rc=$?; if [ "$__rc" -ne 0 ]; then echo {said} "(exit code $__rc)" >&2;'
                      ' exit 1; fi']
    return out
