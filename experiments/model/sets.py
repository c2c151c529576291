"""``ArtifactSet``: an immutable, ordered, de-duplicated collection of artifacts (grids)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

from .. import _gc
from ..errors import DefinitionError
from .artifact import Artifact, check_artifact_class
from .identity import encode_value, to_plain


def _dedupe(items: Iterable[Artifact], where: str) -> tuple[Artifact, ...]:
    seen: dict[str, Artifact] = {}
    with _gc.paused():  # many new acyclic objects: see experiments._gc
        for a in items:
            if not isinstance(a, Artifact):
                raise DefinitionError(
                    f"{where} produced {type(a).__name__} {a!r:.60}, not an Artifact; return "
                    "an instance of an Artifact subclass"
                )
            seen.setdefault(a._experiments_key(), a)
    return tuple(seen.values())


class ArtifactSet(Sequence[Artifact]):
    """An ordered set of artifacts; equal artifacts (same class and parameters) appear once."""

    __slots__ = ("_items",)

    def __init__(self, artifacts: Iterable[Artifact] = (), *, _trusted: bool = False) -> None:
        self._items: tuple[Artifact, ...] = (
            tuple(artifacts) if _trusted else _dedupe(artifacts, "ArtifactSet")
        )

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def from_product(set_type, cls: type | None = None,  # noqa: N804 (cls= is the public name)
                     params: Mapping[str, Any] | None = None) -> ArtifactSet:
        """Every combination of ``params`` values as ``cls`` instances.

        A value that is a list is swept over; any other value is a fixed parameter. A NumPy array
        is its list (``np.logspace(-3, 0, 4)`` sweeps like ``[0.001, 0.01, 0.1, 1.0]``): identity
        is about values, not Python types.
        """
        target = cls
        if not isinstance(target, type) or not issubclass(target, Artifact):
            raise DefinitionError(f"from_product(cls=...) needs an Artifact subclass, got "
                                  f"{target!r}")
        check_artifact_class(target)
        params = dict(params or {})
        names = list(params)
        axes = [_axis(target, n, params[n]) for n in names]
        made = (target(**dict(zip(names, combo, strict=True)))
                for combo in itertools.product(*axes))
        with _gc.paused():  # many new acyclic objects: see experiments._gc
            return set_type(made, _trusted=True)

    @staticmethod
    def join_product(*sets: Iterable[Any]) -> Combinations:
        """All combinations of items from several sets or lists, for ``.map(fn)``."""
        pools = [tuple(s) for s in sets]
        return Combinations(tuple(itertools.product(*pools)))

    # -- transformations ----------------------------------------------------------------
    def map(self, fn: Callable[[Artifact], Artifact]) -> ArtifactSet:
        """A new set of ``fn(artifact)`` for each artifact."""
        return ArtifactSet(_dedupe((fn(a) for a in self._items), f"map({_name(fn)})"),
                           _trusted=True)

    def filter(self, fn: Callable[[Artifact], bool]) -> ArtifactSet:
        """The artifacts for which ``fn`` is true, in order."""
        return ArtifactSet((a for a in self._items if fn(a)), _trusted=True)

    def union(self, *others: Iterable[Artifact]) -> ArtifactSet:
        """This set followed by the artifacts of ``others`` not already in it."""
        return ArtifactSet(itertools.chain(self._items, *others))

    def __or__(self, other: Iterable[Artifact]) -> ArtifactSet:
        return self.union(other)

    def __add__(self, other: Iterable[Artifact]) -> ArtifactSet:
        return self.union(other)

    # -- sequence protocol --------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Artifact]:
        return iter(self._items)

    @overload
    def __getitem__(self, i: int) -> Artifact: ...
    @overload
    def __getitem__(self, i: slice) -> ArtifactSet: ...
    def __getitem__(self, i: int | slice) -> Artifact | ArtifactSet:
        if isinstance(i, slice):
            return ArtifactSet(self._items[i], _trusted=True)
        return self._items[i]

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, Artifact):
            return False
        key = item._experiments_key()
        return any(a._experiments_key() == key for a in self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArtifactSet):
            return NotImplemented
        return [a._experiments_key() for a in self] == [a._experiments_key() for a in other]

    def __hash__(self) -> int:
        return hash(tuple(a._experiments_key() for a in self._items))

    def __repr__(self) -> str:
        kinds = sorted({type(a).__name__ for a in self._items})
        return f"ArtifactSet({len(self)} artifacts: {', '.join(kinds) or 'empty'})"


class Combinations(Sequence[tuple[Any, ...]]):
    """The result of ``join_product``: tuples whose items ``map``/``filter`` receive unpacked."""

    __slots__ = ("_combos",)

    def __init__(self, combos: tuple[tuple[Any, ...], ...]) -> None:
        self._combos = combos

    def map(self, fn: Callable[..., Artifact]) -> ArtifactSet:
        """An ArtifactSet of ``fn(*combination)`` for each combination."""
        return ArtifactSet(_dedupe((fn(*c) for c in self._combos), f"map({_name(fn)})"),
                           _trusted=True)

    def filter(self, fn: Callable[..., bool]) -> Combinations:
        """The combinations for which ``fn(*combination)`` is true."""
        return Combinations(tuple(c for c in self._combos if fn(*c)))

    def __len__(self) -> int:
        return len(self._combos)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._combos)

    def __getitem__(self, i: Any) -> Any:
        return self._combos[i]

    def __repr__(self) -> str:
        return f"Combinations({len(self)})"


def _axis(cls: type, name: str, value: Any) -> list[Any]:
    """The distinct values of one parameter (a list is swept, anything else is fixed)."""
    value = to_plain(value)  # a NumPy array becomes its list, and is swept like one
    values = value if isinstance(value, list) else [value]
    out: dict[str, Any] = {}
    for v in values:
        out.setdefault(encode_value(v, f"{cls.__qualname__}.{name}"), v)
    return list(out.values())


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", type(fn).__name__)
