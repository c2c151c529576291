"""The one place that starts and stops subprocesses: argv lists only, timeouts, process groups.

``run`` runs a command to completion and captures its output (scheduler commands, git).
``spawn`` starts a long-running child as the leader of its own process group, so that
``Child.terminate`` can stop its whole tree (a user's command and everything it started).
A shell string is only ever a user's own command, passed as ``["/bin/bash", "-c", cmd]``.
Standard library only: the worker uses it.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

TYPE_CHECKING = False  # typing costs every task's worker a few ms: only mypy reads this
if TYPE_CHECKING:
    from typing import IO, Any


def process_start(pid: int) -> int | None:
    """The start time (clock ticks since boot) of process ``pid``, or None if it is gone.

    With the pid it names one process for good: a pid reused later has another start time.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def alive(pid: int | None, start: int | None) -> bool:
    """True while the process ``pid`` that started at ``start`` still exists (not a reuse)."""
    return pid is not None and start is not None and process_start(pid) == start


def processes_with_arg(text: str) -> list[int]:
    """Pids of this machine's processes (other than this one) with ``text`` inside an argument.

    Used to find a submission still in flight by its unique job name, e.g. an ``sbatch`` left
    running by a killed launcher. Empty where ``/proc`` does not exist.
    """
    needle = text.encode()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
        except OSError:
            continue
        if any(needle in a for a in args):
            found.append(int(entry))
    return sorted(found)


_PR_SET_PDEATHSIG = 1
_libc: Any = None  # ctypes.CDLL of libc, loaded on first use (ctypes is slow to import)


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when this process dies (Linux).

    A Slurm command left running by a killed launcher could still submit a job (``sbatch``
    retries by itself while the queue is full) that nothing tracks. libc is loaded here, in the
    parent: the child, between fork and exec, only makes the ``prctl`` call.
    """
    global _libc
    if not sys.platform.startswith("linux"):
        return None
    if _libc is None:
        import ctypes
        import ctypes.util

        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl, parent = _libc.prctl, os.getpid()

    def setup() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: die now, as it asked
            os.kill(os.getpid(), signal.SIGKILL)

    return setup


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


_SETPRIV: list[list[str]] = []  # [argv prefix] once probed; [[]] when unusable


def _pdeathsig_prefix() -> list[str]:
    """``setpriv --pdeathsig KILL --`` when it works here (util-linux 2.33+), else ``[]``.

    A ``preexec_fn`` makes Python fork the whole process instead of ``vfork``: 0.3-0.5 s per
    command from a launcher holding a million-artifact plan (1 GB), against ~5 ms. setpriv sets
    the same parent-death signal between its own (cheap) start and the command's exec.
    """
    if not _SETPRIV:
        import shutil  # not at import time: the worker imports this module on every start

        found = shutil.which("setpriv") if sys.platform.startswith("linux") else None
        prefix = [found, "--pdeathsig", "KILL", "--"] if found else []
        if prefix and subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
            prefix = []
        _SETPRIV.append(prefix)
    return _SETPRIV[0]


def _command(argv: Sequence[str], env: Mapping[str, str] | None
             ) -> tuple[list[str], Callable[[], None] | None, dict[str, str] | None]:
    """The command line, ``preexec_fn`` and environment that start ``argv`` so it dies with
    this process: behind ``setpriv`` where it works (Python can then ``vfork``), else with a
    ``preexec_fn`` (a full fork)."""
    if isinstance(argv, str):  # a shell string would be a bug in our code
        raise TypeError("run() takes an argument list, not a string")
    full_env = None if env is None else {**os.environ, **env}
    prefix = _pdeathsig_prefix()
    if not prefix:
        return list(argv), _die_with_parent(), full_env
    import shutil  # the program is looked up here, so a missing one fails as it did without

    program = shutil.which(argv[0], path=(full_env or os.environ).get("PATH"))
    if program is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
    return [*prefix, program, *argv[1:]], None, full_env


def _capture(argv: Sequence[str], timeout_s: float, env: Mapping[str, str] | None = None,
             input_bytes: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` with its output captured as bytes; the checks both ``run`` forms share."""
    cmd, preexec, full_env = _command(argv, env)
    try:
        return subprocess.run(
            cmd, capture_output=True, timeout=timeout_s, env=full_env, input=input_bytes,
            stdin=None if input_bytes is not None else subprocess.DEVNULL, preexec_fn=preexec)
    except subprocess.TimeoutExpired as exc:
        raise ProcTimeout(argv, timeout_s) from exc


def run(
    argv: Sequence[str],
    *,
    timeout_s: float = 60.0,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> ProcResult:
    """Run ``argv`` (never through a shell) and capture its output as text.

    On Linux the command is killed when this process dies (see ``_die_with_parent``).
    Raises ``FileNotFoundError`` when the program does not exist and ``ProcTimeout`` on timeout.
    """
    done = _capture(argv, timeout_s, env,
                    None if input_text is None else input_text.encode("utf-8"))
    return ProcResult(tuple(argv), done.returncode, done.stdout.decode("utf-8", "replace"),
                      done.stderr.decode("utf-8", "replace"))


def run_watched(argv: Sequence[str], *, tick: Callable[[float, str], None],
                timeout_s: float = 60.0, env: Mapping[str, str] | None = None,
                first_s: float = 5.0, every_s: float = 10.0) -> ProcResult:
    """``run``, calling ``tick(elapsed_s, stderr_so_far)`` once the command has run ``first_s``
    seconds and every ``every_s`` after, so a caller can say what a slow command is doing
    (``sbatch`` retrying by itself while the controller's queue is full)."""
    import threading
    import time

    if isinstance(argv, str):
        raise TypeError("run_watched() takes an argument list, not a string")
    cmd, preexec, full_env = _command(argv, env)
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=full_env, preexec_fn=preexec)
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}
    readers = [threading.Thread(target=_drain, args=(pipe, chunks[key]), daemon=True)
               for key, pipe in (("out", popen.stdout), ("err", popen.stderr))]
    for reader in readers:
        reader.start()
    start = time.monotonic()
    deadline, next_tick = start + timeout_s, start + first_s
    with _ExitWatch(popen) as exited:
        while popen.poll() is None:
            now = time.monotonic()
            if now >= deadline:
                popen.kill()
                popen.wait()
                raise ProcTimeout(argv, timeout_s)
            if now >= next_tick:
                tick(now - start, b"".join(chunks["err"]).decode("utf-8", "replace"))
                next_tick += every_s
            exited.wait(max(0.01, min(deadline, next_tick) - now))
    for reader in readers:
        reader.join()
    return ProcResult(tuple(argv), popen.returncode,
                      b"".join(chunks["out"]).decode("utf-8", "replace"),
                      b"".join(chunks["err"]).decode("utf-8", "replace"))


class _ExitWatch:
    """Waits for a child to exit, woken the moment it does: a pidfd (Linux 5.3+) polled
    with a timeout, where ``Popen.wait(timeout)`` sleeps in growing steps (a 5 ms sbatch
    was seen after up to 8 ms more); that wait where no pidfd can be had."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.fd: int | None = None

    def __enter__(self) -> _ExitWatch:
        try:
            self.fd = os.pidfd_open(self.popen.pid)
        except (AttributeError, OSError):  # an older Python or kernel
            self.fd = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)

    def wait(self, seconds: float) -> None:
        """Return once the child has exited or ``seconds`` have passed (it is not reaped)."""
        if self.fd is not None:
            import select

            select.select([self.fd], [], [], seconds)
            return
        try:
            self.popen.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            pass


def _drain(pipe: IO[bytes] | None, into: list[bytes]) -> None:
    """Read a pipe to its end (a thread per pipe, so neither fills up and blocks the child)."""
    if pipe is None:
        return
    with pipe:
        for chunk in iter(lambda: pipe.read1(4096), b""):  # type: ignore[attr-defined]
            into.append(chunk)


@dataclass
class Child:
    """A started process that leads its own process group."""

    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait(self, timeout_s: float | None = None) -> int | None:
        """The exit status (negative: killed by that signal), or None if still running."""
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group (gone already: nothing to do)."""
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def terminate(self, grace_s: float) -> int:
        """SIGTERM the group, SIGKILL it after ``grace_s`` seconds; returns the exit status."""
        self.signal_group(signal.SIGTERM)
        code = self.wait(grace_s)
        if code is None:
            self.signal_group(signal.SIGKILL)
            code = self.popen.wait()
        return code


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a process group we started but no longer hold a ``Child`` for (gone: nothing)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def spawn(argv: Sequence[str], *, stdout: IO[bytes] | None = None, cwd: str | None = None,
          env: Mapping[str, str] | None = None, pipes: bool = False) -> Child:
    """Start ``argv`` in a new session (its own process group), stdin closed.

    ``stdout`` (and stderr with it) goes to the given file, or is inherited when None; ``env``
    is the complete environment (None: inherit ours). ``pipes=True`` instead connects stdin and
    stdout to pipes (``child.popen.stdin``/``.stdout``) for a request/reply conversation; stderr
    is inherited then.
    """
    if isinstance(argv, str):
        raise TypeError("spawn() takes an argument list, not a string")
    if pipes:
        popen = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 cwd=cwd, env=None if env is None else dict(env),
                                 start_new_session=True)
        return Child(popen)
    popen = subprocess.Popen(
        list(argv), stdout=stdout, stderr=subprocess.STDOUT if stdout is not None else None,
        stdin=subprocess.DEVNULL, cwd=cwd, env=None if env is None else dict(env),
        start_new_session=True)
    return Child(popen)


def converse(argv: Sequence[str], *, stderr: IO[bytes]) -> Child:
    """Start ``argv`` with pipes to its stdin and stdout, for a request/reply conversation.

    Unlike ``spawn`` it stays in our session, so a program that asks at the terminal (``ssh``
    asking for a second factor) can, and Ctrl-C reaches it; it dies with us on Linux.
    ``stderr`` goes to a file: a pipe could be held open by a grandchild (OpenSSH's master).
    """
    if isinstance(argv, str):
        raise TypeError("converse() takes an argument list, not a string")
    popen = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=stderr, preexec_fn=_die_with_parent())
    return Child(popen)


def spawn_captured(argv: Sequence[str], *, cwd: str | None = None,
                   env: Mapping[str, str] | None = None) -> Child:
    """Start ``argv`` in a new session with stdout and stderr on two pipes, stdin closed.

    For a command whose output is relayed as it comes (the ``--on`` agent runs the verb so);
    ``Child.terminate`` stops it and everything it started.
    """
    if isinstance(argv, str):
        raise TypeError("spawn_captured() takes an argument list, not a string")
    popen = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=cwd,
                             env=None if env is None else dict(env), start_new_session=True)
    return Child(popen)


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
    done = _capture(argv, timeout_s)
    return BytesResult(tuple(argv), done.returncode, done.stdout,
                       done.stderr.decode("utf-8", "replace"))
