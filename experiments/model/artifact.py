"""The ``Artifact`` base class: a frozen dataclass whose fields are its parameters."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import DefinitionError
from . import identity

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
    # The caches below live in the instance's ``__dict__`` (written directly: a frozen
    # dataclass's ``__setattr__`` refuses, and ``object.__setattr__`` costs twice as much on a
    # grid of a million artifacts).
    def _experiments_key(self) -> str:
        cached: str | None = self.__dict__.get("_exp_key")
        if cached is None:
            cached = _compute_key(self)
        return cached

    @property
    def artifact_id(self) -> str:
        """A short stable hash of the class name and parameters."""
        d = self.__dict__
        cached: str | None = d.get("_exp_id")
        if cached is None:
            cached = d["_exp_id"] = identity.digest(d.get("_exp_key") or _compute_key(self))
        return cached

    @property
    def relpath(self) -> str:
        """The artifact's directory under the artifact root: ``ClassName/k=v,...-<hash>``."""
        d = self.__dict__
        cached: str | None = d.get("_exp_relpath")
        if cached is None:
            if "_exp_key" not in d:
                _compute_key(self)  # also finds the names of the fields in the identity
            cached = d["_exp_relpath"] = identity.default_relpath(self, d["_exp_names"])
        return cached

    def dependencies(self) -> tuple[Artifact, ...]:
        """The artifacts this one needs, found in its fields (also nested in containers)."""
        cached: tuple[Artifact, ...] | None = self.__dict__.get("_exp_deps")
        if cached is None:
            found: list[Artifact] = []
            for name in identity.field_names(type(self)):
                value = getattr(self, name)
                if type(value) not in _LEAVES:  # a plain scalar holds no artifact
                    _collect(value, found)
            cached = self.__dict__["_exp_deps"] = tuple(found) if found else ()
        return cached


_LEAVES = frozenset({int, float, str, bool, type(None)})


def _compute_key(art: Artifact) -> str:
    """Compute and cache the canonical key of ``art`` (and of its dependencies first)."""
    for dep in art.dependencies():
        if "_exp_key" not in dep.__dict__:
            for below in dep.dependencies():
                if "_exp_key" not in below.__dict__:
                    break
            else:  # its own dependencies have keys: key it here, deepest first as below
                _store_key(dep)
                continue
            break
    else:  # the common case: every dependency has its key (or just got it)
        return _store_key(art)
    # Deepest dependencies first, iteratively: long chains must not hit recursion limits.
    pending, order = [art], []
    while pending:
        cur = pending.pop()
        if "_exp_key" not in cur.__dict__:
            order.append(cur)
            pending.extend(cur.dependencies())
    for cur in reversed(order):
        if "_exp_key" not in cur.__dict__:
            _store_key(cur)
    return art.__dict__["_exp_key"]  # type: ignore[no-any-return]


def _store_key(art: Artifact) -> str:
    """Identify ``art`` (its dependencies have keys) and cache its key and identity names."""
    if type(art) not in _checked:
        check_artifact_class(type(art))
    key, names = identity.identify(art)  # checks every value while planning
    d = art.__dict__
    # one tuple per distinct name list, not one per artifact (a million of them)
    d["_exp_names"] = _NAMES.setdefault(names, names)
    d["_exp_key"] = key
    return key


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
_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}


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


def walk(artifacts: Iterator[Artifact] | list[Artifact]) -> Iterator[Artifact]:
    """Yield the given artifacts and all their transitive dependencies, each once."""
    seen: set[str] = set()
    stack = list(artifacts)
    while stack:
        a = stack.pop()
        key = a._experiments_key()
        if key in seen:
            continue
        seen.add(key)
        yield a
        stack.extend(a.dependencies())
