"""Finding stale results for a command (experiments.verbs.stale): dependencies included or not,
each named with the first stage that lists it, unbuilt artifacts never stale."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from experiments import Artifact, ArtifactSet, Task, _atomic, paths
from experiments.model.identity import encode_params
from experiments.session import Session
from experiments.verbs.stale import find_stale, owners
from tests.support.experiments import FakeExecutor


@dataclass(frozen=True)
class Pre(Artifact):
    lr: float

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass(frozen=True)
class Fine(Artifact):
    base: Pre

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def _built(root: str, art: Artifact, params: dict[str, object] | None = None) -> None:
    """Files as the worker leaves them: the marker with its build id, the recorded parameters
    and the build ids of the dependencies it consumed."""
    deps = {d.relpath: f"build-{d.relpath}" for d in art.dependencies()}
    _atomic.write_json(paths.meta_file(root, art.relpath),
                       {"params": params if params is not None else encode_params(art),
                        "provenance": {"dependencies": deps}}, durable=False)
    _atomic.write_json(paths.done_marker(root, art.relpath),
                       {"build_id": f"build-{art.relpath}"}, durable=False)


def test_a_stale_dependency_is_found_with_its_stage_and_makes_its_dependents_stale(
        tmp_path: Path) -> None:
    pre = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2]})
    fine = pre.map(lambda p: Fine(base=p))
    ex = FakeExecutor(project="st", artifact_path=str(tmp_path / "a"), code_path=str(tmp_path))
    ex.stage("pre", pre)
    ex.stage("fine", fine)
    ex.stage("again", pre)  # the same artifacts in a later stage: still named "pre"
    session = Session.open(ex)
    root = session.experiment.artifact_path
    old, fresh = list(pre)
    _built(root, old, {"lr": 0.5})  # built when the default grid said 0.5
    _built(root, fresh)
    _built(root, list(fine)[0])  # Fine of the old Pre; the other Fine is not built
    assert owners(session)[old.artifact_id] == "pre"
    found, warnings = find_stale(session, ["fine"])
    assert warnings == []
    assert [(s.relpath, s.stage) for s in found] == [(list(fine)[0].relpath, "fine"),
                                                     (old.relpath, "pre")]
    assert found[0].reason == f"dependency {old.relpath} is stale"
    assert found[1].reason.startswith("parameters differ from today's (a changed default?): "
                                      "lr was 0.5, now 0.1")
    only, _ = find_stale(session, ["fine"], with_deps=False)
    assert [s.relpath for s in only] == [list(fine)[0].relpath]
    assert find_stale(session, ["again"])[0][0].stage == "pre"


@dataclass(frozen=True)
class Other(Artifact):
    base: Pre

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


def test_a_dependency_reached_many_ways_is_judged_and_named_once(tmp_path: Path) -> None:
    ex = FakeExecutor(project="st", artifact_path=str(tmp_path / "a"), code_path=str(tmp_path))
    ex.stage("pre", [Pre(lr=0.1)])
    ex.stage("a", [Fine(base=Pre(lr=0.1))])  # equal dependencies, distinct objects
    ex.stage("b", [Other(base=Pre(lr=0.1)), Fine(base=Pre(lr=0.1))])
    session = Session.open(ex)
    root = session.experiment.artifact_path
    _built(root, Pre(lr=0.1), {"lr": 0.5})
    for art in (Fine(base=Pre(lr=0.1)), Other(base=Pre(lr=0.1))):
        _built(root, art)
    found, _ = find_stale(session, ["a", "b"])
    assert sorted(s.relpath for s in found) == sorted(
        [Pre(lr=0.1).relpath, Fine(base=Pre(lr=0.1)).relpath, Other(base=Pre(lr=0.1)).relpath])
    assert [s.stage for s in found if s.relpath == Pre(lr=0.1).relpath] == ["pre"]
    only, _ = find_stale(session, ["b", "a"], with_deps=False)
    assert sorted(s.relpath for s in only) == sorted(
        [Fine(base=Pre(lr=0.1)).relpath, Other(base=Pre(lr=0.1)).relpath])


def test_an_empty_artifact_root_asks_no_artifact(tmp_path: Path) -> None:
    """Nothing built yet (a grid's first launch, the root missing or empty): nothing is stale,
    and no artifact's folder is looked up (a million would be); one folder there and each is
    asked again."""
    pre = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2]})
    ex = FakeExecutor(project="st", artifact_path=str(tmp_path / "a"), code_path=str(tmp_path))
    ex.stage("pre", pre)
    session = Session.open(ex)
    assert find_stale(session, ["pre"]) == ([], [])  # no root at all
    (tmp_path / "a").mkdir()
    assert find_stale(session, ["pre"]) == ([], [])  # an empty root
    assert all("_exp_relpath" not in a.__dict__ for a in pre)
    old = list(pre)[0]
    _built(session.experiment.artifact_path, old, {"lr": 0.5})
    assert [s.relpath for s in find_stale(session, ["pre"])[0]] == [old.relpath]
