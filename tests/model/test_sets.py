"""ArtifactSet: grids, joins, map/filter/union, sequence protocol, immutability, dedupe."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from experiments import Artifact, ArtifactSet, DefinitionError, Task


@dataclass(frozen=True)
class Pre(Artifact):
    lr: float
    epochs: int = 1

    def construct(self, builder: Task) -> None:
        pass


@dataclass(frozen=True)
class Fine(Artifact):
    base: Pre
    dataset: str

    def construct(self, builder: Task) -> None:
        pass


def _params(s: ArtifactSet) -> list[tuple[float, int]]:
    return [(a.lr, a.epochs) for a in s]


def test_from_product_sweeps_lists_in_order() -> None:
    s = ArtifactSet.from_product(cls=Pre, params={"lr": [1e-3, 1e-4, 1e-5],
                                                   "epochs": [10, 20, 50, 100]})
    assert len(s) == 12
    assert _params(s)[:5] == [(1e-3, 10), (1e-3, 20), (1e-3, 50), (1e-3, 100), (1e-4, 10)]
    assert _params(s)[-1] == (1e-5, 100)
    assert all(type(a) is Pre for a in s)


def test_from_product_non_list_is_fixed() -> None:
    s = ArtifactSet.from_product(cls=Pre, params={"lr": 0.5, "epochs": [1, 2]})
    assert _params(s) == [(0.5, 1), (0.5, 2)]


def test_from_product_tuple_value_is_fixed_not_swept() -> None:
    @dataclass(frozen=True)
    class Shape(Artifact):
        dims: tuple

    s = ArtifactSet.from_product(cls=Shape, params={"dims": (1, 2, 3)})
    assert [a.dims for a in s] == [(1, 2, 3)]


def test_from_product_dedupes_repeated_values() -> None:
    s = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.1, 0.2], "epochs": [3, 3]})
    assert _params(s) == [(0.1, 3), (0.2, 3)]


def test_from_product_needs_artifact_class() -> None:
    with pytest.raises(DefinitionError, match=r"from_product\(cls=\.\.\.\) needs an Artifact"):
        ArtifactSet.from_product(cls=dict, params={"a": [1]})


def test_from_product_unknown_param_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="nope"):
        ArtifactSet.from_product(cls=Pre, params={"lr": [1.0], "nope": [1]})


def test_join_product_with_set_and_list_maps_unpacked() -> None:
    pre = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2]})
    fine = ArtifactSet.join_product(pre, ["wiki", "code", "math"]).map(
        lambda model, dataset: Fine(base=model, dataset=dataset))
    assert isinstance(fine, ArtifactSet)
    assert len(fine) == 6
    assert [(f.base.lr, f.dataset) for f in fine][:4] == [
        (0.1, "wiki"), (0.1, "code"), (0.1, "math"), (0.2, "wiki")]
    assert all(f.dependencies() == (f.base,) for f in fine)


def test_join_product_filter_unpacks() -> None:
    pre = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2]})
    combos = ArtifactSet.join_product(pre, ["a", "b"]).filter(
        lambda model, ds: not (model.lr == 0.2 and ds == "b"))
    assert len(combos) == 3
    assert list(combos)[-1] == (Pre(lr=0.2), "a")
    fine = combos.map(lambda m, d: Fine(base=m, dataset=d))
    assert [(f.base.lr, f.dataset) for f in fine] == [(0.1, "a"), (0.1, "b"), (0.2, "a")]


def test_map_filter_union_and_or() -> None:
    s = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2, 0.3]})
    doubled = s.map(lambda a: Pre(lr=a.lr, epochs=2))
    assert [a.epochs for a in doubled] == [2, 2, 2]
    small = s.filter(lambda a: a.lr < 0.25)
    assert [a.lr for a in small] == [0.1, 0.2]
    both = small.union(doubled)
    assert len(both) == 5
    assert (small | s) == s.filter(lambda a: a.lr < 0.25).union(s[2:])
    assert [a.lr for a in small | s] == [0.1, 0.2, 0.3]
    assert len(s + s) == 3


def test_map_collapsing_to_equal_artifacts_dedupes() -> None:
    s = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2]})
    assert len(s.map(lambda a: Pre(lr=1.0))) == 1


def test_map_returning_non_artifact_raises() -> None:
    s = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1]})
    with pytest.raises(DefinitionError, match=r"map\(<lambda>\) produced float"):
        s.map(lambda a: a.lr)
    with pytest.raises(DefinitionError, match=r"map\(<lambda>\) produced str"):
        ArtifactSet.join_product(s, ["x"]).map(lambda m, d: d)
    with pytest.raises(DefinitionError, match="produced dict"):
        ArtifactSet([{"lr": 1}])  # type: ignore[list-item]


def test_map_error_names_the_function() -> None:
    def make(model: Pre, ds: str) -> str:
        return ds

    s = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1]})
    with pytest.raises(DefinitionError, match=r"map\(make\) produced str"):
        ArtifactSet.join_product(s, ["x"]).map(make)


def test_sequence_protocol() -> None:
    s = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2, 0.3, 0.4]})
    assert s[0] == Pre(lr=0.1)
    assert s[-1] == Pre(lr=0.4)
    sliced = s[1:3]
    assert isinstance(sliced, ArtifactSet)
    assert [a.lr for a in sliced] == [0.2, 0.3]
    assert Pre(lr=0.3) in s
    assert Pre(lr=0.3, epochs=2) not in s
    assert "Pre" not in s
    assert [a.lr for a in iter(s)] == [0.1, 0.2, 0.3, 0.4]
    assert s.index(Pre(lr=0.2)) == 1
    with pytest.raises(IndexError):
        s[4]


def test_dedupes_equal_artifacts_keeping_first() -> None:
    a1, a2 = Pre(lr=0.1), Pre(lr=0.1)
    s = ArtifactSet([a1, Pre(lr=0.2), a2, Pre(lr=0.1, epochs=1)])
    assert len(s) == 2
    assert s[0] is a1


def test_immutable() -> None:
    s = ArtifactSet([Pre(lr=0.1)])
    with pytest.raises(TypeError):
        s[0] = Pre(lr=0.2)  # type: ignore[index]
    with pytest.raises(AttributeError):
        s.extra = 1  # type: ignore[attr-defined]
    assert not hasattr(s, "append")
    s2 = s.union([Pre(lr=0.2)])
    assert len(s) == 1 and len(s2) == 2
    assert hash(s) == hash(ArtifactSet([Pre(lr=0.1)]))


def test_empty_set() -> None:
    s = ArtifactSet()
    assert len(s) == 0
    assert list(s) == []
    assert "empty" in repr(s)
