"""Staleness verdicts kept between commands: reused while nothing they depend on changed,
worked out again as soon as the artifact, its parameters or a dependency's build changes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, Task, _atomic, paths
from experiments.model.identity import encode_params
from experiments.tracking.stale_cache import VerdictCache
from experiments.tracking.staleness import StaleFinder
from experiments.worker import provenance


@dataclass(frozen=True)
class Pre(Artifact):
    i: int

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass(frozen=True)
class Fine(Artifact):
    base: Pre

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def _build(root: str, art: Artifact, build: str, deps: dict[str, str | None],
           params: object = None) -> None:
    """The files a worker leaves: ``.artifact.json`` with provenance, then ``.done``."""
    prov = {"format": 1, "build_id": build, "dependencies": deps, "code": {"snapshot": None}}
    _atomic.write_json(paths.meta_file(root, art.relpath),
                       {"params": encode_params(art) if params is None else params,
                        "provenance": prov}, durable=False)
    _atomic.write_json(paths.done_marker(root, art.relpath), {"build_id": build},
                       durable=False)


def _finder(root: str, cache_file: Path) -> StaleFinder:
    return StaleFinder(root, cache=VerdictCache(cache_file, root))


@pytest.fixture
def grid(tmp_path: Path) -> tuple[str, Path, Pre, Fine]:
    root, pre = str(tmp_path / "art"), Pre(1)
    fine = Fine(pre)
    _build(root, pre, "b1", {})
    _build(root, fine, "f1", {pre.relpath: "b1"})
    return root, tmp_path / "cache.json", pre, fine


def test_verdicts_are_kept_and_reused_without_reading_the_metadata(
        grid: tuple[str, Path, Pre, Fine], monkeypatch: pytest.MonkeyPatch) -> None:
    root, cache, _pre, fine = grid
    first = _finder(root, cache)
    assert first.reason(fine) is None
    first.save()
    assert cache.exists()

    def unread(*_args: object) -> dict[str, object]:
        raise AssertionError("a kept verdict must not read .artifact.json")

    monkeypatch.setattr(provenance, "read_meta", unread)
    assert _finder(root, cache).reason(fine) is None


def test_a_rebuilt_dependency_is_seen_through_the_cache(
        grid: tuple[str, Path, Pre, Fine]) -> None:
    root, cache, pre, fine = grid
    finder = _finder(root, cache)
    assert finder.reason(fine) is None
    finder.save()
    _build(root, pre, "b2", {})  # the dependency is built again: a new .done
    why = _finder(root, cache).reason(fine)
    assert why is not None and "was rebuilt after it (consumed build b1, now b2)" in why


def test_changed_parameters_and_a_stale_dependency_are_seen_through_the_cache(
        grid: tuple[str, Path, Pre, Fine]) -> None:
    root, cache, pre, fine = grid
    finder = _finder(root, cache)
    assert finder.reason(fine) is None
    finder.save()
    _build(root, pre, "b1", {}, params={"i": 7})  # recorded parameters differ from today's
    again = _finder(root, cache)
    assert "parameters differ" in (again.reason(pre) or "")
    assert again.reason(fine) == f"dependency {pre.relpath} is stale"


def test_a_damaged_cache_file_is_an_empty_cache(grid: tuple[str, Path, Pre, Fine]) -> None:
    root, cache, _pre, fine = grid
    cache.write_text("{not json")
    finder = _finder(root, cache)
    assert finder.reason(fine) is None
    finder.save()
    assert VerdictCache(cache, root).get(fine.relpath, "nope") == (False, None)
    assert '"format": 1' in cache.read_text()


def _model(default: int) -> type[Artifact]:
    """A class ``Model(i, n=default)``: the same name (and identity) whatever the default, as
    editing the default in the experiment file keeps it."""

    @dataclass(frozen=True)
    class Model(Artifact):
        i: int
        n: int = default

        def construct(self, builder: Task) -> None:
            builder.run_command("true")

    return Model


def test_a_changed_default_wins_over_a_kept_verdict(tmp_path: Path) -> None:
    root, cache = str(tmp_path / "art"), tmp_path / "cache.json"
    old = _model(500)(i=1)  # type: ignore[call-arg]
    _build(root, old, "m1", {})
    finder = _finder(root, cache)
    assert finder.reason(old) is None
    finder.save()
    new = _model(4000)(i=1)  # type: ignore[call-arg]
    assert new.relpath == old.relpath  # the same built artifact, judged with today's default
    assert "parameters differ" in (_finder(root, cache).reason(new) or "")


def test_a_changed_code_snapshot_wins_over_a_kept_verdict(
        grid: tuple[str, Path, Pre, Fine]) -> None:
    root, cache, pre, _fine = grid
    prov = {"format": 1, "build_id": "b1", "dependencies": {}, "code": {"snapshot": "s1"}}
    _atomic.write_json(paths.meta_file(root, pre.relpath),
                       {"params": encode_params(pre), "provenance": prov}, durable=False)
    first = StaleFinder(root, code_id="s1", cache=VerdictCache(cache, root))
    assert first.reason(pre) is None
    first.save()
    again = StaleFinder(root, code_id="s2", cache=VerdictCache(cache, root))
    assert again.reason(pre) == "built from code snapshot s1; the code is now s2"
