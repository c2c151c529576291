"""Options every verb accepts (also before the verb), shared by the command modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--local``, ``--workers``, ``--artifact-path``, ``--code-path``, ``--on`` (handled
    before click parses: see ``experiments.remote``)."""
    fn = click.option("--local", is_flag=True, default=None,
                      help="Run on this machine instead of Slurm.")(fn)
    fn = click.option("--workers", type=click.IntRange(min=1), default=None,
                      help="Local runs: at most N artifacts at once, on top of the "
                           "machine's CPUs, GPUs and memory (default: no extra cap; 2 on a "
                           "Slurm login node).")(fn)
    fn = click.option("--artifact-path", default=None, help="Override the artifact root.")(fn)
    fn = click.option("--code-path", default=None, help="Override the code directory.")(fn)
    fn = click.option("--on", "on", default=None, metavar="NAME",
                      help="Run this command on the cluster NAME of config.json's remotes, "
                           "over SSH (the code is shipped first; not with --local).")(fn)
    return fn
