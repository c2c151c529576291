"""What the site means for a command: warnings about running tasks on this very machine."""

from __future__ import annotations

from ..backends.base import WarnsAboutSite
from ..session import Session


def run_here_warnings(session: Session) -> list[str]:
    """For ``launch``/``drylaunch`` on a backend that runs tasks here: a warning when this
    machine looks like a shared Slurm login node (the backend's optional ``site_warning``)."""
    backend = session.backend()
    warning = backend.site_warning() if isinstance(backend, WarnsAboutSite) else None
    return [warning] if warning else []
