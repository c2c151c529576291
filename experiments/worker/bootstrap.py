"""How a task starts the worker: ``python -I -S`` with this package's own folder on ``sys.path``.

Starting the interpreter is the per-task floor. Its ``site`` step (site-packages, ``.pth``
files, editable-install finders) is most of that start on many machines, and the worker needs
none of it: it is standard library only. So every task (Slurm batch script, local runner) runs::

    <python> -I -S -c <BOOTSTRAP> <package parent> <spec_dir> [<index>]

``-I`` isolates the worker from the caller's environment (no ``PYTHONPATH``, no current folder,
no user site-packages on ``sys.path``), ``-S`` skips ``site``, and ``<package parent>`` (the
folder holding the ``experiments`` package of the launching process, the same code that wrote
the specs) is appended after the standard library, so no installed package can shadow a
standard module. When that folder is not visible on the building machine (a package installed
only on the login node), the bootstrap runs ``site.main()`` and imports the ``experiments`` that
``<python>`` has installed, as ``python -m experiments.worker`` would. Steps that need
site-packages (cloud storage) call :func:`ensure_site` first. The user's own commands run with
the task's environment untouched: none of these flags reach them.

This works for a virtualenv, a conda environment or any interpreter named by ``python`` in
``config.json``, since only the interpreter's standard library is used until a step needs more.
"""

from __future__ import annotations

import os
import sys

#: The folder that holds this ``experiments`` package (put on the worker's ``sys.path``).
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: The worker's start, one line: ``argv[1]`` is the package parent, the rest is the worker's.
BOOTSTRAP = ('import sys,os;p=sys.argv.pop(1);'
             'sys.path.append(p) if os.path.isfile(p+"/experiments/worker/entry.py") '
             'else __import__("site").main();'
             'from experiments.worker.entry import main;sys.exit(main())')

#: Interpreter flags of the worker: isolated (-I) and without ``site`` (-S).
FLAGS = ("-I", "-S")


def worker_argv(python: str, spec_dir: str, index: int | None = None,
                package_parent: str = PACKAGE_PARENT) -> list[str]:
    """The command line that builds task ``index`` of ``spec_dir`` (index from the environment
    (``$SLURM_ARRAY_TASK_ID``) when None)."""
    tail = [] if index is None else [str(index)]
    return [python, *FLAGS, "-c", BOOTSTRAP, package_parent, spec_dir, *tail]


def serve_argv(python: str, package_parent: str = PACKAGE_PARENT) -> list[str]:
    """The command line of a pooled local worker (``--serve``: one task per request), started
    like every task, so a ``python`` without this package installed works as well."""
    return [python, *FLAGS, "-c", BOOTSTRAP, package_parent, "--serve"]


def ensure_site() -> None:
    """Add site-packages now, when a step needs an installed package (the worker starts
    without ``site``); a no-op when ``site`` already ran."""
    if sys.flags.no_site and "site" not in sys.modules:
        import site

        site.main()
