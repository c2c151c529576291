"""``ArtifactSet``: an immutable, ordered, de-duplicated collection of artifacts (grids)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

from .. import _gc
from ..errors import DefinitionError
from .artifact import Artifact, check_artifact_class
from .hyperband import HyperbandSpec
from .identity import encode_value, to_plain
from .sweeps import Outcomes, SweepSpec

AnySweep = SweepSpec | HyperbandSpec


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

    def successive_halving(self, *, budget: str, budgets: Sequence[Any], eta: int = 3,
                           metric: str, mode: str = "min", resume: str | None = None) -> Sweep:
        """A successive-halving sweep over these configurations (see
        :mod:`experiments.model.sweeps`): rung k's trial is the configuration with its
        ``budget`` field set to ``budgets[k]``; the top ``1/eta`` by ``metric`` (``mode``
        min or max) go on; ``sweep.best(k)`` is the winners."""
        return Sweep(SweepSpec(tuple(self._items), budget, tuple(budgets), eta, metric, mode,
                               resume))

    def hyperband(self, *, budget: str, min_budget: float, max_budget: float, eta: int = 3,
                  metric: str, mode: str = "min", resume: str | None = None) -> Sweep:
        """Hyperband over these configurations (see :mod:`experiments.model.hyperband`):
        successive-halving brackets side by side, the configurations dealt to them in the
        order listed; ``sweep.best(k)`` ranks every bracket's last rung."""
        return Sweep(HyperbandSpec.build(self._items, budget=budget, min_budget=min_budget,
                                         max_budget=max_budget, eta=eta, metric=metric,
                                         mode=mode, resume=resume))

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


# -- sets decided at planning time (adaptive sweeps) -------------------------------------------
class Deferred(ArtifactSet):
    """A set the artifact root decides: what a verb that does not plan sees is its static part
    (a sweep's rung 0; nothing for ``best``); the planner asks :meth:`resolve`."""

    __slots__ = ()

    def resolve(self, outcomes: Outcomes) -> ArtifactSet | None:
        """The artifacts to plan now, or None while undecided."""
        raise NotImplementedError

    def waiting_on(self, outcomes: Outcomes) -> str:
        """What this set still waits for ("" once decided)."""
        return "" if self.resolve(outcomes) is not None else "an undecided sweep"

    def map(self, fn: Callable[[Artifact], Artifact]) -> ArtifactSet:
        """``fn`` applied to each artifact, once they are decided."""
        return _Mapped(self, lambda s: s.map(fn))

    def filter(self, fn: Callable[[Artifact], bool]) -> ArtifactSet:
        """The artifacts for which ``fn`` is true, once they are decided."""
        return _Mapped(self, lambda s: s.filter(fn))


class _Mapped(Deferred):
    """``Deferred.map``/``filter``: a transformation applied once the source is decided."""

    __slots__ = ("_source", "_fn")

    def __init__(self, source: Deferred, fn: Callable[[ArtifactSet], ArtifactSet]) -> None:
        super().__init__((), _trusted=True)
        self._source, self._fn = source, fn

    def resolve(self, outcomes: Outcomes) -> ArtifactSet | None:
        got = self._source.resolve(outcomes)
        return None if got is None else self._fn(got)

    def waiting_on(self, outcomes: Outcomes) -> str:
        return self._source.waiting_on(outcomes)


class Sweep(Deferred):
    """A successive-halving sweep (:class:`experiments.model.sweeps.SweepSpec`) or Hyperband
    (:class:`experiments.model.hyperband.HyperbandSpec`) as a stage: every bracket's rung 0
    statically, every trial decided so far when planned."""

    __slots__ = ("spec",)

    def __init__(self, spec: AnySweep) -> None:
        super().__init__([b.trial(c, 0) for b in spec.brackets for c in b.configs],
                         _trusted=True)
        self.spec = spec

    def resolve(self, outcomes: Outcomes) -> ArtifactSet:
        return ArtifactSet(self.spec.to_plan(outcomes), _trusted=True)

    def waiting_on(self, outcomes: Outcomes) -> str:
        return self.spec.waiting_on(outcomes)

    def shown(self, outcomes: Outcomes) -> ArtifactSet:
        """Every trial of the rungs reached so far, failed ones too (what ``table`` and the
        report list: a failed trial is not planned again, but it is shown)."""
        return ArtifactSet([t for b in self.spec.brackets for r in b.rungs(outcomes)
                            for t in r.trials], _trusted=True)

    def best(self, k: int = 1) -> Deferred:
        """The ``k`` best trials of the last rung (best first), decided after the sweep."""
        if k < 1:
            raise DefinitionError(f"best(k={k}): k must be at least 1")
        return _Best(self.spec, k)


class _Best(Deferred):
    """``sweep.best(k)``: the top ``k`` of the last rung (of every bracket), once decided."""

    __slots__ = ("_spec", "_k")

    def __init__(self, spec: AnySweep, k: int) -> None:
        super().__init__((), _trusted=True)
        self._spec, self._k = spec, k

    def resolve(self, outcomes: Outcomes) -> ArtifactSet | None:
        got = self._spec.winners(outcomes, self._k)
        return None if got is None else ArtifactSet(got, _trusted=True)

    def waiting_on(self, outcomes: Outcomes) -> str:
        return self._spec.waiting_on(outcomes)


def resolve_stages(stages: Mapping[str, ArtifactSet], outcomes: Outcomes
                   ) -> tuple[dict[str, ArtifactSet], list[str]]:
    """The stages with every :class:`Deferred` set resolved, and what each undecided one
    waits on (``"<stage>: <what>"``); an undecided set plans nothing yet."""
    out: dict[str, ArtifactSet] = {}
    waiting: list[str] = []
    for name, arts in stages.items():
        if not isinstance(arts, Deferred):
            out[name] = arts
            continue
        got = arts.resolve(outcomes)
        out[name] = got if got is not None else ArtifactSet()
        why = arts.waiting_on(outcomes)
        if why:
            waiting.append(f"{name}: {why}")
    return out, waiting
