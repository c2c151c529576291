"""Long-lived worker processes for the local backend: one interpreter builds many artifacts.

Starting ``python -m experiments.worker`` per artifact costs an interpreter start and the
imports each time: more than a trivial artifact itself. A :class:`PooledWorker` is one
``python -m experiments.worker --serve`` that builds one task per request (a JSON line on its
stdin) and answers with the exit code (a line on its stdout). Isolation is kept where it
matters: each process runs one artifact at a time in its own process group; an artifact that
kills its process (a crash, a time limit, a cancel) costs only that artifact, and the launcher
starts a fresh process for the next one.
"""

from __future__ import annotations

import enum
import json
import os
import select
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from ... import _proc
from ...worker.bootstrap import serve_argv


class Ending(enum.Enum):
    """How one request ended."""

    REPLIED = "replied"    # the worker answered with an exit code
    TIMEOUT = "timeout"    # the time limit passed; the process was terminated
    DIED = "died"          # the process ended without answering (crash, or stopped by us)


@dataclass(frozen=True)
class Outcome:
    """The result of one request: how it ended and the exit code (worker's or process's)."""

    ending: Ending
    code: int | None = None


class PooledWorker:
    """One ``experiments.worker --serve`` process, used by one launcher thread at a time."""

    def __init__(self, python: str, env: Mapping[str, str] | None = None) -> None:
        self.child = _proc.spawn(serve_argv(python), env=env, pipes=True)
        self.alive = True
        self.command: int | None = None  # process group of the request's latest command
        self._buffer = b""  # what the worker wrote that is not yet a whole line

    @property
    def pid(self) -> int:
        return self.child.pid

    def build(self, request: Mapping[str, Any], time_limit_s: float | None,
              grace_s: float, checkpoint: tuple[float, int] | None = None) -> Outcome:
        """Send one request and wait for its reply, at most ``time_limit_s`` seconds; with
        ``checkpoint`` ``(after_s, signal)``, send the worker that signal after ``after_s``
        seconds (it passes it on to the running command), as Slurm's ``--signal`` does."""
        stdin, stdout = self._pipes()
        self.command = None
        try:
            stdin.write(json.dumps(request).encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            return self._died()
        now = time.monotonic()
        deadline = None if time_limit_s is None else now + time_limit_s
        signal_at = None if checkpoint is None else now + checkpoint[0]
        while True:
            line = self._line(stdout, _earliest(deadline, signal_at))
            if line is None and signal_at is not None and checkpoint is not None:
                self._signal(checkpoint[1])  # the time for the checkpoint signal has come
                signal_at = None
                continue
            if line is None:  # the time limit passed before a reply
                self.stop(grace_s)
                return Outcome(Ending.TIMEOUT, self.child.wait(0))
            if line.startswith(b"pgid "):  # steps run one by one: only the last may run
                self.command = int(line.split()[1])
                continue
            if not line.strip():
                return self._died()
            return Outcome(Ending.REPLIED, int(line))

    def _line(self, stdout: IO[bytes], deadline: float | None) -> bytes | None:
        """The next line from the worker (b"" at end of file), or None after ``deadline``.

        Reads the raw descriptor into our own buffer: a buffered ``readline`` after ``select``
        can swallow a second line that arrived with the first (a ``pgid`` and the reply), and
        ``select`` then waits forever for bytes that already came.
        """
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([stdout], [], [], left)
            if not readable:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            chunk = os.read(stdout.fileno(), 65536)
            if not chunk:
                line, self._buffer = self._buffer, b""
                return line
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    def _signal(self, signum: int) -> None:
        try:
            os.kill(self.child.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace_s: float) -> None:
        """Terminate the process (it passes SIGTERM on to its command), then make sure no
        command of the current request outlives it."""
        self.alive = False
        self.child.terminate(grace_s)
        self._reap_commands()

    def _reap_commands(self) -> None:
        if self.command is not None:
            _proc.kill_group(self.command)
            self.command = None

    def close(self, grace_s: float) -> None:
        """Let an idle process end (no more requests); terminate it if it lingers."""
        self.alive = False
        stdin = self.child.popen.stdin
        try:
            if stdin is not None:
                stdin.close()
        except OSError:
            pass
        if self.child.wait(grace_s) is None:
            self.child.terminate(grace_s)

    def _died(self) -> Outcome:
        self.alive = False
        code = self.child.wait(5.0)
        code = self.child.terminate(1.0) if code is None else code
        self._reap_commands()  # a command orphaned by the crash must not run on unaccounted
        return Outcome(Ending.DIED, code)

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        stdin, stdout = self.child.popen.stdin, self.child.popen.stdout
        assert stdin is not None and stdout is not None  # spawned with pipes=True
        return stdin, stdout


def _earliest(*moments: float | None) -> float | None:
    """The earliest of the moments that are set (None when none is)."""
    given = [m for m in moments if m is not None]
    return min(given) if given else None
