"""Helpers for tests on the real Slurm test cluster: wrapped commands that count calls, waiting
for the queue, the three-tier scenario's set-up and records, and a model of sbatch's parser."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from experiments.tracking.store import Store
from tests.support.experiments import THREE_TIERS

# Characters sbatch cannot take inside one #SBATCH value, whatever the quoting.
BAD_CHARS = ("\n", "\r", "\x00", "\t", "\u2028")
PROGRAMS = ("sbatch", "squeue", "sacct", "scancel", "scontrol")


@dataclass
class Wrapped:
    """A PATH whose Slurm commands log each call, then run the real one (maybe with a fault)."""

    env: dict[str, str]
    log: Path

    def calls(self, prog: str) -> int:
        return count_calls(self.log, prog)


def wrap(tmp: Path, cluster_env: dict[str, str], faults: dict[str, str] | None = None
         ) -> Wrapped:
    """``faults`` maps a program to bash run instead of plain ``exec $REAL "$@"``."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    log = tmp / "calls.log"
    for prog in PROGRAMS:
        real = shutil.which(prog)
        assert real, f"{prog} not installed"
        body = (faults or {}).get(prog, 'exec "$REAL" "$@"')
        path = bindir / prog
        path.write_text(f'#!/bin/bash\nREAL={real}\necho "{prog} $*" >> {log}\n{body}\n')
        path.chmod(0o755)
    return Wrapped({**cluster_env, "PATH": f"{bindir}:{os.environ['PATH']}"}, log)


def wrap_commands(tmp: Path, after: dict[str, str] | None = None) -> tuple[dict[str, str], Path]:
    """``wrap`` where each fault is bash run *after* the real command (its exit code in $rc)."""
    faults = {prog: f'"$REAL" "$@"\nrc=$?\n{snippet}' for prog, snippet in (after or {}).items()}
    w = wrap(tmp, {}, faults)
    return w.env, w.log


def count_calls(calls: Path, prog: str) -> int:
    """How many times ``prog`` was called, from a wrapper log."""
    if not calls.exists():
        return 0
    return sum(1 for line in calls.read_text().splitlines() if line.split(" ", 1)[0] == prog)


def my_jobs(name_part: str = "") -> list[str]:
    """Live job rows (``id|name|state|reason``) of this user, optionally filtered by name."""
    res = subprocess.run(["squeue", "--me", "-h", "-r", "-o", "%i|%j|%T|%r"],
                         capture_output=True, text=True, timeout=30, check=True)
    return [r for r in res.stdout.splitlines() if name_part in r]


def wait_until_idle(name_part: str, timeout_s: float = 240) -> None:
    """Wait until no job whose name contains ``name_part`` is in the queue."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not my_jobs(name_part):
            return
        time.sleep(0.5)
    raise AssertionError(f"jobs still queued after {timeout_s} s: {my_jobs(name_part)[:5]}")


def cancel_all(name_part: str) -> None:
    """Cancel every job of this user whose name contains ``name_part``."""
    ids = {r.split("|")[0].split("_")[0] for r in my_jobs(name_part)}
    if ids:
        subprocess.run(["scancel", *sorted(ids)], check=False, timeout=30)


def arrays_known_to_slurm(name_part: str) -> set[str]:
    """Array job ids, live or recently finished (within MinJobAge), whose name has ``name_part``."""
    res = subprocess.run(["squeue", "--me", "-h", "-t", "all", "-o", "%F|%j"],
                         capture_output=True, text=True, timeout=30, check=True)
    return {r.split("|")[0] for r in res.stdout.splitlines() if name_part in r}


def setup_three_tiers(tmp_path: Path, extra: dict[str, str] | None = None,
                      wrappers: dict[str, str] | None = None
                      ) -> tuple[Path, dict[str, str], Path, Path]:
    """THREE_TIERS as ``exp.py`` in ``tmp_path``, with a fresh project and wrapped Slurm
    commands: (script, env, artifact root, call log)."""
    script = tmp_path / "exp.py"
    script.write_text(THREE_TIERS)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    wrapped, calls = wrap_commands(tmp_path, wrappers)
    env = {"OUT": str(out), "PROJECT": f"r{uuid.uuid4().hex[:8]}", "RUNS": str(tmp_path / "runs"),
           **wrapped, **(extra or {})}
    return script, env, out, calls


def records(project: str) -> list[dict[str, object]]:
    """Every job record of ``project`` in this test's experiments home, as plain dicts."""
    store = Store(Path(os.environ["EXPERIMENTS_HOME"]), project)
    return [r.to_dict() for r in store.all_records()]


def sbatch_args(text: str) -> list[str]:
    """The arguments sbatch 22.05 reads from the rest of an ``#SBATCH`` line.

    A model of its parser (src/sbatch/opt.c ``_get_argument``), checked against real sbatch in
    tests/backends/slurm/test_script.py: ASCII whitespace splits (even after a backslash),
    quotes group, a backslash escapes the next character, an unquoted ``#`` ends the line.
    """
    args, i, n = [], 0, len(text)
    space = " \t\n\v\f\r"
    while True:
        while i < n and text[i] in space:
            i += 1
        if i >= n:
            return args
        arg, quote, escaped = [], "", False
        while i < n and (quote or text[i] not in space):
            ch, i = text[i], i + 1
            if escaped:
                arg.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif quote:
                if ch == quote:
                    quote = ""
                else:
                    arg.append(ch)
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                i = n
                break
            else:
                arg.append(ch)
        if quote:
            raise ValueError(f"unmatched {quote} in {text!r}")
        args.append("".join(arg))
