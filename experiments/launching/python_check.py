"""``drylaunch --validate``: does the interpreter that will run the worker exist and run here?

Checked where it runs: on this machine for ``--local``. On Slurm the interpreter runs on the
nodes, which a login node cannot see (``srun --test-only`` does not start anything), so the batch
script checks it there before starting the worker and ends the task with a reason ``status``
shows ("python … not found on <node>"; see ``backends/slurm/script.py``).
"""

from __future__ import annotations

import os
import shutil

from .. import _proc

CHECK_TIMEOUT_S = 60.0
MIN_VERSION = (3, 10)
_PROBE = ("import sys; sys.stdout.write('%d.%d' % sys.version_info[:2]); "
          f"sys.exit(0 if sys.version_info >= {MIN_VERSION!r} else 3)")


def python_problem(python: str, where: str = "this machine") -> str | None:
    """Why ``python`` cannot run the worker on this machine, or None when it can."""
    fix = "set \"python\" in config.json to an interpreter that exists (or remove the key)"
    found = python if os.sep in python else shutil.which(python)
    if found is None or not os.path.exists(found):
        return f"python {python} not found on {where}; {fix}"
    if os.path.isdir(found) or not os.access(found, os.X_OK):
        return f"python {python} is not executable on {where}; {fix}"
    try:
        res = _proc.run([python, "-I", "-c", _PROBE], timeout_s=CHECK_TIMEOUT_S)
    except FileNotFoundError:
        return f"python {python} not found on {where}; {fix}"
    except PermissionError:
        return f"python {python} is not executable on {where}; {fix}"
    except OSError as exc:
        return f"python {python} cannot be started on {where} ({exc.strerror}); {fix}"
    except _proc.ProcTimeout:
        return f"python {python} did not answer within {CHECK_TIMEOUT_S:.0f} s on {where}"
    if res.returncode == 3:
        return (f"python {python} is Python {res.stdout.strip()}; the worker needs "
                f"{MIN_VERSION[0]}.{MIN_VERSION[1]} or newer; {fix}")
    if not res.ok:
        return f"python {python} does not run on {where} ({res.describe()}); {fix}"
    return None
