"""The one place that starts subprocesses: argv lists only, timeouts, stderr kept for errors."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcResult:
    """What a finished command left behind."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        """One line naming the command, its exit status and its stderr, for error messages."""
        err = (self.stderr or self.stdout).strip().replace("\n", " | ")
        return f"`{' '.join(self.argv)}` exited {self.returncode}: {err or '(no output)'}"


class ProcTimeout(Exception):
    """The command did not finish within its timeout (it may still have had an effect)."""

    def __init__(self, argv: Sequence[str], timeout_s: float) -> None:
        super().__init__(f"`{' '.join(argv)}` timed out after {timeout_s:g} s")
        self.argv = tuple(argv)
        self.timeout_s = timeout_s


def run(
    argv: Sequence[str],
    *,
    timeout_s: float = 60.0,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> ProcResult:
    """Run ``argv`` (never through a shell) and capture its output.

    Raises ``FileNotFoundError`` when the program does not exist and ``ProcTimeout`` on timeout.
    """
    if isinstance(argv, str):  # a shell string would be a bug in our code
        raise TypeError("run() takes an argument list, not a string")
    full_env = None if env is None else {**os.environ, **env}
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=full_env,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProcTimeout(argv, timeout_s) from exc
    return ProcResult(tuple(argv), done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class BytesResult:
    """A finished command whose stdout is kept as raw bytes (file names, binary diffs)."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        """One line naming the command, its exit status and its stderr, for error messages."""
        return ProcResult(self.argv, self.returncode, "", self.stderr).describe()


def run_bytes(argv: Sequence[str], *, timeout_s: float = 60.0) -> BytesResult:
    """Run ``argv`` (never through a shell); stdout as bytes, because it may not be text.

    ``git ls-files -z`` prints file names in whatever bytes the file system holds, and
    ``git diff --binary`` is not text; decoding either would fail or lose information.
    Raises ``FileNotFoundError`` when the program does not exist and ``ProcTimeout`` on timeout.
    """
    if isinstance(argv, str):
        raise TypeError("run_bytes() takes an argument list, not a string")
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ProcTimeout(argv, timeout_s) from exc
    stderr = done.stderr.decode("utf-8", "replace")
    return BytesResult(tuple(argv), done.returncode, done.stdout, stderr)
