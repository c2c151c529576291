"""What the site means for a command: warnings about running tasks on this very machine."""

from __future__ import annotations

from ..session import Session


def run_here_warnings(session: Session) -> list[str]:
    """For ``launch``/``drylaunch`` on a backend that runs tasks here: a warning when this
    machine looks like a shared Slurm login node (the backend's optional ``site_warning``)."""
    note = getattr(session.backend(), "site_warning", None)
    warning = note() if callable(note) else None
    return [warning] if isinstance(warning, str) and warning else []
