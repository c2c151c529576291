"""Backends by name: ``backends.get("slurm", options)``.

Each factory imports its backend only when asked, so choosing the local backend never loads the
Slurm modules and the other way round. ``register`` adds (or, in tests, replaces) a backend:
a third backend is one module implementing :class:`~.base.Backend` plus one ``register`` call.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from .base import Backend, BackendOptions

Factory = Callable[[BackendOptions], Backend]


def _slurm(options: BackendOptions) -> Backend:
    from .slurm.backend import SlurmBackend

    return SlurmBackend(options.config)


def _local(options: BackendOptions) -> Backend:
    from .local.machine import LocalBackend

    return LocalBackend(options.workers, options.config)


def _fake(options: BackendOptions) -> Backend:
    from .fake import FakeBackend

    return FakeBackend()


_FACTORIES: dict[str, Factory] = {"slurm": _slurm, "local": _local, "fake": _fake}


def names() -> list[str]:
    """The registered backend names."""
    return sorted(_FACTORIES)


def register(name: str, factory: Factory) -> Factory | None:
    """Register ``factory`` under ``name``; returns the factory it replaced, if any."""
    previous = _FACTORIES.get(name)
    _FACTORIES[name] = factory
    return previous


def get(name: str, options: BackendOptions) -> Backend:
    """A new backend called ``name``; ConfigError listing the valid names otherwise."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ConfigError(f"unknown backend {name!r}; valid backends are: {', '.join(names())}")
    return factory(options)
