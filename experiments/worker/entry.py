"""Where every worker process starts: ``python -m experiments.worker`` and the batch script's
bootstrap line both call :func:`main`, which builds a task (:mod:`.build`) or, with
``--serve``, serves the local backend's pool (:mod:`.pool_mode`)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Build the task the command line names, or serve requests with ``--serve``."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--serve"]:
        from .pool_mode import main as serve

        return serve()
    from .build import main as build

    return build(args)
