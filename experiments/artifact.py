"""The ``Artifact`` base class: a frozen dataclass whose fields are its parameters."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from . import identity
from .errors import DefinitionError

if TYPE_CHECKING:
    from .task import Task


class Artifact:
    """Base class of every experiment result; subclass it with ``@dataclass(frozen=True)``.

    Fields are parameters; a field holding another Artifact (also inside tuples, lists and
    dicts) is a dependency. Override ``construct`` to record how to build it and, optionally,
    ``get_requirements`` to ask for resources.
    """

    __experiments_artifact__: ClassVar[bool] = True

    def __new__(cls, *args: Any, **kwargs: Any) -> Artifact:
        if cls not in _checked:
            check_artifact_class(cls)
        return super().__new__(cls)

    def get_requirements(self) -> dict[str, Any]:
        """Scheduler requirements (partition, gpus, cpus, time, ...); empty by default."""
        return {}

    def construct(self, builder: Task) -> None:
        """Record the steps that build this artifact on ``builder``; must be overridden."""
        raise DefinitionError(
            f"{type(self).__qualname__} does not define construct(self, builder); add it to say "
            "how the artifact is built"
        )

    # -- identity ---------------------------------------------------------------------------
    def _experiments_key(self) -> str:
        cached = self.__dict__.get("_exp_key")
        if cached is None:
            # Deepest dependencies first, iteratively: long chains must not hit recursion limits.
            pending, order = [self], []
            while pending:
                art = pending.pop()
                if "_exp_key" not in art.__dict__:
                    order.append(art)
                    pending.extend(art.dependencies())
            for art in reversed(order):
                if "_exp_key" not in art.__dict__:
                    check_artifact_class(type(art))
                    key, names = identity.identify(art)  # checks every value while planning
                    object.__setattr__(art, "_exp_names", names)
                    object.__setattr__(art, "_exp_key", key)
            cached = self.__dict__["_exp_key"]
        return str(cached)

    @property
    def artifact_id(self) -> str:
        """A short stable hash of the class name and parameters."""
        cached = self.__dict__.get("_exp_id")
        if cached is None:
            cached = identity.digest(self._experiments_key())
            object.__setattr__(self, "_exp_id", cached)
        return cached

    @property
    def relpath(self) -> str:
        """The artifact's directory under the artifact root: ``ClassName/k=v,...-<hash>``."""
        cached = self.__dict__.get("_exp_relpath")
        if cached is None:
            self._experiments_key()  # also finds the names of the fields in the identity
            cached = identity.default_relpath(self, self.__dict__["_exp_names"])
            object.__setattr__(self, "_exp_relpath", cached)
        return cached

    def dependencies(self) -> tuple[Artifact, ...]:
        """The artifacts this one needs, found in its fields (also nested in containers)."""
        cached = self.__dict__.get("_exp_deps")
        if cached is None:
            found: list[Artifact] = []
            for name, _default, _factory in identity.field_info(type(self)):
                _collect(getattr(self, name), found)
            cached = tuple(found)
            object.__setattr__(self, "_exp_deps", cached)
        return cached


def _collect(value: Any, out: list[Artifact], depth: int = 0) -> None:
    """Append the artifacts in ``value``; stops below the depth limit (the key check refuses)."""
    if isinstance(value, Artifact):
        out.append(value)
    elif depth > identity.MAX_DEPTH:
        return
    elif isinstance(value, (tuple, list)):
        for v in value:
            _collect(v, out, depth + 1)
    elif isinstance(value, dict):
        for v in value.values():
            _collect(v, out, depth + 1)


_checked: set[type] = set()


def check_artifact_class(cls: type) -> None:
    """Raise a TypeError naming ``cls`` unless it is a frozen dataclass subclass of Artifact."""
    if cls in _checked:
        return
    params = cls.__dict__.get("__dataclass_params__")
    if not dataclasses.is_dataclass(cls) or params is None:
        raise DefinitionError(
            f"{cls.__qualname__} is not a dataclass; decorate it with @dataclass(frozen=True)"
        )
    if not params.frozen:
        raise DefinitionError(
            f"{cls.__qualname__} is a dataclass but not frozen; use @dataclass(frozen=True) so "
            "its parameters (and so its identity) cannot change after creation"
        )
    _checked.add(cls)
