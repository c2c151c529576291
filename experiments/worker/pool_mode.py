"""The local backend's pool mode: one long-lived worker that builds one task per request.

``python -m experiments.worker --serve`` (see :mod:`experiments.backends.local.pool`) starts
this instead of :func:`.build.main`, so one interpreter builds many artifacts.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from .build import _signal, build_task, install_signal_handlers
from .common import EXIT_FAILED
from .common import say as _say


def main() -> int:
    """Serve requests until stdin ends (or a signal stops the task being built)."""
    install_signal_handlers()
    return serve()


def serve() -> int:
    """Build one task per request line on stdin; reply with its exit code, one line each.

    A request is JSON: ``{"spec_dir", "index", "log", "env", "header"}``. The task's output
    (ours and its commands') goes to ``log``, where ``header`` is written first; ``env`` is laid
    over the environment this process started with, for that task only. The replies go to the
    stdout this process started with, each after a ``pgid <n>`` line per command started (its
    process group, so the launcher can stop it should this process die). After an
    interruption the process exits: the launcher that signalled it starts a fresh one, so no
    state leaks from one artifact to the next.
    """
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    _signal["announce"] = lambda pgid: replies.write(f"pgid {pgid}\n")
    base_env = dict(os.environ)
    for line in sys.stdin:
        request = json.loads(line)
        _signal["checkpoint"] = False  # a late signal for the previous task is not this one's
        os.environ.clear()
        os.environ.update(base_env)
        os.environ.update(request.get("env", {}))
        _to_log(request["log"])
        _say(request.get("header", "") or "task started")
        try:
            code = build_task(request["spec_dir"], int(request["index"]))
        except Exception:  # a bug or a damaged spec: this task fails, the pool lives on
            traceback.print_exc()
            code = EXIT_FAILED
        sys.stdout.flush()
        sys.stderr.flush()
        replies.write(f"{code}\n")
        if _signal["signum"] is not None:
            return code
    return 0


def _to_log(log: str) -> None:
    """Point this process's stdout and stderr (and so its commands') at ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
