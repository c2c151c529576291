"""The ids/relpaths cache (issue 26): a hit gives exactly what computing gives, and anything
that defines an identity — a parameter, a default, a dependency, our identity code — makes a
miss, never a stale answer."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from experiments import Artifact, ArtifactSet
from experiments.model import id_cache


@pytest.fixture(autouse=True)
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(id_cache, "MIN_ARTIFACTS", 1)


def point_class(default: float) -> type[Artifact]:
    """The same class (module and qualified name) with ``lr`` defaulting to ``default``."""
    @dataclass(frozen=True)
    class Point(Artifact):
        i: int
        lr: float = default
        tag: str = "a"

        def construct(self, builder: Any) -> None:
            pass
    return Point


def grid(cls: type[Artifact], **params: Any) -> list[Artifact]:
    return list(ArtifactSet.from_product(cls=cls, params=params))


def truth(arts: list[Artifact]) -> list[tuple[str, str]]:
    """Ids and relpaths computed from scratch (fresh copies, nothing cached on them)."""
    fresh = [type(a)(**{k: getattr(a, k) for k in a.__dataclass_fields__}) for a in arts]
    return [(a.artifact_id, a.relpath) for a in fresh]


def ids(arts: list[Artifact]) -> list[tuple[str, str]]:
    return [(a.artifact_id, a.relpath) for a in arts]


def test_a_hit_gives_what_computing_gives(tmp_path: Path) -> None:
    cls = point_class(0.1)
    cache = tmp_path / "ids.json"
    assert id_cache.prime(grid(cls, i=list(range(50)), tag=["a", "b c/é"]), cache) == 0
    again = grid(cls, i=list(range(50)), tag=["a", "b c/é"])
    assert id_cache.prime(again, cache) == 100
    assert ids(again) == truth(again)


def test_a_changed_parameter_misses(tmp_path: Path) -> None:
    cls = point_class(0.1)
    cache = tmp_path / "ids.json"
    id_cache.prime(grid(cls, i=list(range(20))), cache)
    changed = grid(cls, i=[*range(19), 99])
    assert id_cache.prime(changed, cache) == 0
    assert ids(changed) == truth(changed)
    floats = grid(cls, i=list(range(20)), lr=[0.1000001])
    assert id_cache.prime(floats, cache) == 0 and ids(floats) == truth(floats)


def test_a_changed_default_misses(tmp_path: Path) -> None:
    cache = tmp_path / "ids.json"
    old = grid(point_class(0.1), i=list(range(10)), lr=[0.1])  # lr equals the default
    id_cache.prime(old, cache)
    new = grid(point_class(0.2), i=list(range(10)), lr=[0.1])  # now lr differs from it
    assert id_cache.prime(new, cache) == 0
    assert ids(new) == truth(new) and ids(new) != ids(old)


@dataclass(frozen=True)
class Source(Artifact):
    seed: int

    def construct(self, builder: Any) -> None:
        pass


@dataclass(frozen=True)
class Derived(Artifact):
    src: Source
    k: int

    def construct(self, builder: Any) -> None:
        pass


def test_a_changed_dependency_misses(tmp_path: Path) -> None:
    cache = tmp_path / "ids.json"
    first = [Derived(Source(1), k) for k in range(10)]
    id_cache.prime(first, cache)
    same = [Derived(Source(1), k) for k in range(10)]
    assert id_cache.prime(same, cache) == 10 and ids(same) == truth(same)
    other = [Derived(Source(2), k) for k in range(10)]
    assert id_cache.prime(other, cache) == 0
    assert ids(other) == truth(other) and ids(other) != ids(first)


def test_changed_identity_code_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = point_class(0.1)
    cache = tmp_path / "ids.json"
    id_cache.prime(grid(cls, i=list(range(10))), cache)
    monkeypatch.setattr(id_cache, "_VERSION", ["another version of identity.py"])
    assert id_cache.prime(grid(cls, i=list(range(10))), cache) == 0


def test_a_tampered_or_foreign_file_is_not_used(tmp_path: Path) -> None:
    cls = point_class(0.1)
    cache = tmp_path / "ids.json"
    id_cache.prime(grid(cls, i=list(range(10))), cache)
    data = json.loads(cache.read_text())
    data["pairs"][3] = ["000000000000", "Point/evil"]
    cache.write_text(json.dumps({**data, "key": "0" * 64}))  # another key: a miss
    arts = grid(cls, i=list(range(10)))
    assert id_cache.prime(arts, cache) == 0 and ids(arts) == truth(arts)
    if os.getuid() == 0:
        os.chown(cache, 12345, -1)  # someone else's file, even with the right key
        assert id_cache.prime(grid(cls, i=list(range(10))), cache) == 0


def test_unusual_values_take_no_part(tmp_path: Path) -> None:
    cls = point_class(0.1)
    cache = tmp_path / "ids.json"
    arts = grid(cls, i=list(range(5)), tag=[("a", 1)])  # a tuple: computed as always
    assert id_cache.prime(arts, cache) == 0 and not cache.exists()
    assert ids(arts) == truth(arts)
