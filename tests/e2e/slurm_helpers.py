"""Helpers for end-to-end tests on the real Slurm test cluster: call counting, waiting."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

PROGRAMS = ("sbatch", "squeue", "sacct", "scancel", "scontrol")


def wrap_commands(tmp: Path, extra: dict[str, str] | None = None) -> tuple[dict[str, str], Path]:
    """A PATH with wrappers that log each Slurm call, then run the real program.

    ``extra`` maps a program to a bash snippet run *after* the real command (its exit code in
    ``$rc``), to inject faults such as a timeout after a successful submission.
    """
    bindir = tmp / "wrapped-bin"
    bindir.mkdir(exist_ok=True)
    calls = tmp / "slurm-calls.log"
    for prog in PROGRAMS:
        real = shutil.which(prog)
        assert real, f"{prog} not found: is Slurm installed?"
        after = (extra or {}).get(prog, 'exit "$rc"')
        script = bindir / prog
        script.write_text(
            "#!/bin/bash\n"
            f'echo "{prog} $*" >> {calls}\n'
            f'{real} "$@"\nrc=$?\n{after}\n'
        )
        script.chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    return env, calls


def count_calls(calls: Path, prog: str) -> int:
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
    ids = {r.split("|")[0].split("_")[0] for r in my_jobs(name_part)}
    if ids:
        subprocess.run(["scancel", *sorted(ids)], check=False, timeout=30)


def arrays_known_to_slurm(name_part: str) -> set[str]:
    """Array job ids, live or recently finished (within MinJobAge), whose name has ``name_part``."""
    res = subprocess.run(["squeue", "--me", "-h", "-t", "all", "-o", "%F|%j"],
                         capture_output=True, text=True, timeout=30, check=True)
    return {r.split("|")[0] for r in res.stdout.splitlines() if name_part in r}
