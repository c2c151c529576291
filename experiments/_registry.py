"""Executors created so far in this process, so ``experiments --file`` can find the one a file
defines without the CLI importing the executor module (which hands over to the CLI)."""

from __future__ import annotations

from typing import Any

_created: list[Any] = []


def add(executor: Any) -> None:
    """Remember an executor (called by ``Executor.__init__``)."""
    _created.append(executor)


def created() -> list[Any]:
    """Every executor created so far, oldest first."""
    return list(_created)
