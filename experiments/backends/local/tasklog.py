"""What a running local launcher is doing, for ``status`` in other processes.

The launcher keeps one append-only file per job in the job's spec folder; its main thread
appends a line whenever a task's situation changes:

    ready I          its dependencies in this launch have ended: it waits for room only
    wait I KEY       ready, but KEY is not free (gpus, cpus, mem, workers, throttle)
    rest KEY         the ready tasks no later ``wait`` line explains wait for KEY
    start I          running (a checkpoint requeue keeps it running)
    end I STATE [W]  ended in ``JobState`` STATE, with the scheduler's word W (``TIMEOUT``)

A task with no line waits for its dependencies. Appending costs the same whatever the size of
the launch (a rewrite per change would cost O(tasks) each time). The reader is given the file of
a job whose launcher is alive and turns it into the ``TaskStatus`` of every task: queued with
the reason in plain words (as Slurm's pending reasons are), running, or ended.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from ...states import JobState, Outlook, TaskStatus

FILE = "local-tasks.log"
_STATES = frozenset(s.value for s in JobState)
_MAX_BYTES = 64 * 1024 * 1024  # far beyond any launch: a file larger than this is not ours

# KEY -> (the reason, as status shows it; what it means)
REASONS = {
    "deps": ("waiting for its dependencies",
             "it starts when the artifacts it depends on in this launch have ended"),
    "gpus": ("waiting for GPUs", "the GPUs it asks for are held by running artifacts (or kept "
                                 "for one that has waited longer); it starts when they are free"),
    "cpus": ("waiting for CPUs", "the CPUs it asks for are held by running artifacts; it starts "
                                 "when they are free"),
    "mem": ("waiting for memory", "the memory it asks for is held by running artifacts; it "
                                  "starts when enough is free"),
    "workers": ("waiting for a worker", "as many artifacts run as --workers, --max-running or "
                                        "a login node's cap allow; it starts when one ends"),
    "throttle": ("waiting for max_parallel", "its job runs at most max_parallel artifacts at "
                                             "once; it starts when one of them ends"),
}


def path(spec_dir: str) -> str:
    """The task log of the job whose spec folder is ``spec_dir``."""
    return os.path.join(spec_dir, FILE)


class TaskLog:
    """The writer: lines are collected, then appended with one write per job (:meth:`flush`)."""

    def __init__(self) -> None:
        self._pending: dict[str, list[str]] = {}  # spec dir -> lines not yet written

    def add(self, spec_dir: str, line: str) -> None:
        self._pending.setdefault(spec_dir, []).append(line)

    def flush(self) -> None:
        """Append what was added; a file that cannot be written only costs ``status`` detail."""
        pending, self._pending = self._pending, {}
        for spec_dir, lines in pending.items():
            data = "".join(f"{line}\n" for line in lines).encode("ascii", "replace")
            try:
                fd = os.open(path(spec_dir), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError:
                continue
            try:
                os.write(fd, data)
            except OSError:
                pass
            finally:
                os.close(fd)


@dataclass
class _Task:
    ready: bool = False
    waits: tuple[int, str] = (-1, "")  # (line number, key) of its latest wait line
    started: bool = False
    end: TaskStatus | None = None


def read(spec_dir: str, n_tasks: int) -> dict[int, TaskStatus]:
    """The status of each of the job's ``n_tasks`` tasks from its task log (every task waits
    for its dependencies when there is no log yet)."""
    try:
        with open(path(spec_dir), "rb") as fh:
            text = fh.read(_MAX_BYTES).decode("ascii", "replace")
    except OSError:
        text = ""
    return parse(text.splitlines(), n_tasks)


def parse(lines: Iterable[str], n_tasks: int) -> dict[int, TaskStatus]:
    """The statuses the lines of a task log describe; malformed lines are skipped."""
    tasks = [_Task() for _ in range(n_tasks)]
    rest = (-1, "workers")
    for number, line in enumerate(lines):
        words = line.split()
        if len(words) == 2 and words[0] == "rest" and words[1] in REASONS:
            rest = (number, words[1])
            continue
        if len(words) < 2 or not words[1].isdigit() or int(words[1]) >= n_tasks:
            continue
        task = tasks[int(words[1])]
        _apply(task, number, words)
    return {i: _status(t, rest) for i, t in enumerate(tasks)}


def _apply(task: _Task, number: int, words: list[str]) -> None:
    kind = words[0]
    if kind == "ready":
        task.ready = True
    elif kind == "wait" and len(words) == 3 and words[2] in REASONS:
        task.ready, task.waits = True, (number, words[2])
    elif kind == "start":
        task.started = True
    elif kind == "end" and len(words) in (3, 4) and words[2] in _STATES:
        task.end = TaskStatus(JobState(words[2]), raw=words[3] if len(words) == 4 else "")


def _status(task: _Task, rest: tuple[int, str]) -> TaskStatus:
    if task.end is not None:
        return task.end
    if task.started:
        return TaskStatus(JobState.RUNNING)
    key = "deps" if not task.ready else max(task.waits, rest)[1]
    reason, hint = REASONS[key]
    return TaskStatus(JobState.PENDING, reason=reason, hint=hint, outlook=Outlook.CLEARS)
