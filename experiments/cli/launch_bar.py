"""The launch's progress bar, made only when a local run starts building (a Slurm launch
shows none), and the printer that moves it on each launch event.

Only imported with ``launch``; rich.progress loads when the first task is added.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import render

if TYPE_CHECKING:
    from rich.progress import Progress

    from ..launching.launch_context import LaunchEvent

    Progressor = Callable[[LaunchEvent], None]


def progress_bar() -> Progress:
    """The launch's progress bar (rich.progress is imported here: only launch shows one)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("[bold]building"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(),
                    console=render.out(), transient=False)


class LazyBar:
    """The progress bar, made and shown when its first task is added (a local run starting):
    a Slurm launch, which adds none, neither imports rich.progress nor starts its refresh
    thread. Without a bar, the end writes what an empty bar writes (off a terminal: a newline;
    on one, only cursor codes that show nothing)."""

    def __init__(self) -> None:
        self.bar: Progress | None = None

    def __enter__(self) -> LazyBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif not render.is_terminal():
            render.line("")

    def add_task(self, description: str, total: int | None, **fields: Any) -> int:
        """``Progress.add_task``, starting the bar first."""
        if self.bar is None:
            self.bar = progress_bar()
            self.bar.start()
        return int(self.bar.add_task(description, total=total, **fields))

    def update(self, task_id: int, **changes: Any) -> None:
        """``Progress.update`` of a task added before."""
        if self.bar is not None:
            from rich.progress import TaskID

            self.bar.update(TaskID(task_id), **changes)


def progress_printer(bar: LazyBar, waiting: Progressor) -> Progressor:
    """Launch events onto the progress bar; Slurm's slow submissions to ``waiting`` (lines
    above it)."""
    from ..launching.launch_context import EventKind

    handle: dict[str, Any] = {}

    def progress(event: LaunchEvent) -> None:
        if event.kind is EventKind.START:
            handle["id"] = bar.add_task("build", total=event.total, failed=0)
            handle["failed"] = 0
        elif event.kind is EventKind.WAITING:
            waiting(event)
        elif event.kind is EventKind.TASK_ENDED and "id" in handle:
            if event.state is not None and event.state.value != "completed":
                handle["failed"] += 1
            bar.update(handle["id"], advance=1, failed=handle["failed"])

    return progress
