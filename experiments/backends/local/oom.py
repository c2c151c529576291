"""Whether the kernel's OOM killer ended a local task: the local backend's OUT_OF_MEMORY.

On Slurm, the scheduler says OUT_OF_MEMORY. On one machine nobody does, but the kernel counts
the processes its OOM killer ends: per cgroup (``oom_kill`` in cgroup v2's ``memory.events``,
or v1's ``memory.oom_control``) and for the whole machine (``oom_kill`` in ``/proc/vmstat``).
A task whose command died of SIGKILL while that count grew is taken to have run out of memory;
where no count can be read (not Linux, an old kernel), a task is never said to have.
"""

from __future__ import annotations

import os
import signal

_KEY = "oom_kill"
SIGKILLED = (-signal.SIGKILL, 128 + signal.SIGKILL)  # a command, or a shell's child, killed


def counter_files(proc_cgroup: str = "/proc/self/cgroup",
                  cgroup_root: str = "/sys/fs/cgroup") -> list[str]:
    """The files that count this process's OOM kills, the closest first: its cgroup's (v2,
    then v1's memory controller), then the machine's."""
    out = []
    try:
        with open(proc_cgroup, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, where = (line.split(":", 2) + ["", ""])[:3]
        where = where.lstrip("/")
        if controllers == "":
            out.append(os.path.join(cgroup_root, where, "memory.events"))
        elif "memory" in controllers.split(","):
            out.append(os.path.join(cgroup_root, "memory", where, "memory.oom_control"))
    out.append("/proc/vmstat")
    return out


def read_count(path: str) -> int | None:
    """The ``oom_kill`` count in one of those files (None: not there, or not said)."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(" ")
                if key == _KEY and value.strip().isdigit():
                    return int(value)
    except OSError:
        return None
    return None


class OomWatch:
    """The OOM kill count of the first file that has one, read at a task's start and end."""

    def __init__(self, files: list[str] | None = None) -> None:
        candidates = counter_files() if files is None else files
        self.file = next((f for f in candidates if read_count(f) is not None), None)

    def count(self) -> int | None:
        return None if self.file is None else read_count(self.file)

    def killed(self, before: int | None, exit_code: object) -> bool:
        """Whether a command that ended with ``exit_code`` was most likely OOM-killed: it died
        of SIGKILL and the count grew since ``before``."""
        after = self.count()
        return (exit_code in SIGKILLED and before is not None and after is not None
                and after > before)
