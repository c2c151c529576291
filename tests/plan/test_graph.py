"""Planning: tiers, grouping by requirements, skips, missing dependencies, chunking."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from experiments import Artifact, ArtifactSet, DefinitionError, PlanError, Task
from experiments.config import settings as cfg
from experiments.model.task import RunCommand
from experiments.plan import Plan, PlannedTask, build_plan, chunk
from experiments.resources import common_resources


@dataclass(frozen=True)
class Pre(Artifact):
    lr: float
    gpus: int = 4

    def get_requirements(self) -> dict[str, Any]:
        return {"partition": "gpu", "gpus": f"A100:{self.gpus}"}

    def construct(self, builder: Task) -> None:
        builder.run_command(f"train --lr {self.lr}")


@dataclass(frozen=True)
class Fine(Artifact):
    base: Pre
    dataset: str

    def get_requirements(self) -> dict[str, Any]:
        return {"partition": "cpu"}

    def construct(self, builder: Task) -> None:
        builder.run_command("finetune")


@dataclass(frozen=True)
class Node(Artifact):
    name: str
    deps: tuple = ()

    def construct(self, builder: Task) -> None:
        builder.run_command(f"build {self.name}")


def _steps(art: Artifact) -> tuple[Any, ...]:
    t = Task(artifact_path="/a", code_path="/c", relpath=art.relpath)
    art.construct(t)
    return tuple(t.steps)


def _resources(resolve: Any) -> Any:
    """The planner's resources callback over a requirements function (default: the artifact's)."""
    requirements = resolve or (lambda a: a.get_requirements())
    return lambda a: common_resources(requirements(a), f"{type(a).__qualname__} {a.relpath}")


def _plan(stages: Mapping[str, Sequence[Artifact]], selected: Sequence[str], *,
          built: set[str] | None = None, live: Mapping[str, str] | None = None,
          with_deps: bool = False, resolve: Any = None) -> Plan:
    built = built or set()
    return build_plan(stages, selected, is_built=lambda a: a.relpath in built,
                      live=live or {}, resources=_resources(resolve),
                      construct=_steps, with_deps=with_deps)


def _names(plan: Plan) -> list[list[list[str]]]:
    """Per tier, per group, the relpaths of the tasks."""
    return [[[t.relpath for t in g.tasks] for g in tier] for tier in plan.tiers]


PRE = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2]})
FINE = ArtifactSet.join_product(PRE, ["wiki", "code"]).map(
    lambda m, d: Fine(base=m, dataset=d))
STAGES = {"pretrain": PRE, "finetune": FINE}


def test_two_stages_make_two_tiers_in_dependency_order() -> None:
    plan = _plan(STAGES, ["pretrain", "finetune"])
    assert plan.stages == ("pretrain", "finetune")
    assert _names(plan) == [[[a.relpath for a in PRE]], [[a.relpath for a in FINE]]]
    assert [g.stage for g in plan.groups] == ["pretrain", "finetune"]
    assert [g.tier for g in plan.groups] == [0, 1]
    assert plan.task_count == 6
    assert plan.skipped == ()
    fine = plan.tiers[1][0].tasks[0]
    assert fine.steps == (RunCommand("finetune"),)
    assert fine.class_name == "Fine"
    assert fine.params == {"base": {"artifact": "Pre", "relpath": PRE[0].relpath},
                           "dataset": "wiki"}


@pytest.mark.parametrize("order", [["finetune", "pretrain"], ["pretrain", "finetune"]])
def test_selection_order_does_not_matter(order: list[str]) -> None:
    plan = _plan(STAGES, order)
    assert _names(plan) == [[[a.relpath for a in PRE]], [[a.relpath for a in FINE]]]
    assert plan.tiers[0][0].stage == "pretrain"  # the dependency keeps its own stage


def test_grouping_by_resolved_requirements(exp_home: Path) -> None:
    conf = cfg.load()
    models = [Pre(lr=0.1, gpus=4), Pre(lr=0.2, gpus=4), Pre(lr=0.3, gpus=8)]
    plan = _plan({"pretrain": models}, ["pretrain"],
                 resolve=lambda a: conf.resolve_requirements(a.get_requirements()))
    assert len(plan.tiers) == 1
    groups = plan.tiers[0]
    assert [[t.relpath for t in g.tasks] for g in groups] == [
        [models[0].relpath, models[1].relpath], [models[2].relpath]]
    assert dict(groups[0].resources.requirements) == {"partition": "gpu", "gpus": "A100:4",
                                           "time": "24:00:00", "cpus": 8, "requeue": True}
    assert dict(groups[1].resources.requirements)["gpus"] == "A100:8"
    assert groups[0].resources.requirements == tuple(
        sorted(dict(groups[0].resources.requirements).items()))


def test_skips_built_and_live() -> None:
    built = {PRE[0].relpath}
    live = {PRE[1].artifact_id: "4242"}
    plan = _plan({"pretrain": PRE}, ["pretrain"], built=built, live=live)
    assert plan.tiers == ()
    assert plan.task_count == 0
    reasons = {s.relpath: (s.stage, s.reason) for s in plan.skipped}
    assert reasons[PRE[0].relpath] == ("pretrain", "built")
    assert reasons[PRE[1].relpath][0] == "pretrain"
    assert "4242" in reasons[PRE[1].relpath][1]
    assert plan.live_jobs == {PRE[1].artifact_id: "4242"}


def test_missing_dependency_is_plan_error() -> None:
    with pytest.raises(PlanError) as info:
        _plan(STAGES, ["finetune"])
    msg = str(info.value)
    assert f"{PRE[0].relpath} (stage 'pretrain')" in msg
    assert f"{PRE[1].relpath} (stage 'pretrain')" in msg
    assert msg.startswith("2 dependencies are neither built, queued nor selected")
    assert "--with-deps" in msg


def test_missing_dependency_without_stage_named() -> None:
    orphan = Pre(lr=9.0)
    with pytest.raises(PlanError, match=rf"{orphan.relpath} \(no stage\).*--with-deps"):
        _plan({"finetune": [Fine(base=orphan, dataset="x")]}, ["finetune"])


def test_built_or_live_dependency_is_not_missing() -> None:
    live = {PRE[1].artifact_id: "77"}
    plan = _plan(STAGES, ["finetune"], built={PRE[0].relpath}, live=live)
    assert len(plan.tiers) == 1
    tasks = {t.relpath: t for t in plan.tiers[0][0].tasks}
    on_built = tasks[FINE[0].relpath]
    on_live = tasks[FINE[2].relpath]
    assert on_built.dep_ids == ()  # built: nothing to wait for
    assert on_built.dep_relpaths == (PRE[0].relpath,)  # but the worker still checks it
    assert on_live.dep_ids == (PRE[1].artifact_id,)
    assert on_live.dep_relpaths == (PRE[1].relpath,)


def test_with_deps_includes_missing_dependencies() -> None:
    plan = _plan(STAGES, ["finetune"], with_deps=True)
    assert _names(plan) == [[[a.relpath for a in PRE]], [[a.relpath for a in FINE]]]
    assert plan.tiers[0][0].stage == "pretrain"
    assert plan.stages == ("finetune",)
    orphan = Pre(lr=9.0)
    plan = _plan({"finetune": [Fine(base=orphan, dataset="x")]}, ["finetune"], with_deps=True)
    assert plan.tiers[0][0].stage == "finetune"  # no stage of its own: its dependent's
    assert plan.tiers[0][0].tasks[0].relpath == orphan.relpath


def test_diamond_dependencies() -> None:
    a = Node("a")
    b, c = Node("b", (a,)), Node("c", (a,))
    d = Node("d", (b, c))
    plan = _plan({"all": [d]}, ["all"], with_deps=True)
    assert _names(plan) == [[[a.relpath]], [[b.relpath, c.relpath]], [[d.relpath]]]
    top = plan.tiers[2][0].tasks[0]
    assert top.dep_ids == (b.artifact_id, c.artifact_id)
    assert top.dep_relpaths == (b.relpath, c.relpath)
    assert plan.task_count == 4


def test_three_tier_chain_and_skipping_an_edge() -> None:
    a = Node("a")
    b = Node("b", (a,))
    c = Node("c", (b, a))
    plan = _plan({"s": [c, b, a]}, ["s"])
    assert _names(plan) == [[[a.relpath]], [[b.relpath]], [[c.relpath]]]
    assert plan.tiers[2][0].tasks[0].dep_ids == (b.artifact_id, a.artifact_id)
    plan = _plan({"s": [c, b, a]}, ["s"], built={a.relpath})
    assert _names(plan) == [[[b.relpath]], [[c.relpath]]]
    assert plan.tiers[1][0].tasks[0].dep_ids == (b.artifact_id,)


def test_long_chain_does_not_recurse_in_the_planner() -> None:
    node = Node("n0")
    for i in range(1, 3000):
        node = Node(f"n{i}", (node,))
        _ = node.relpath  # identities computed bottom-up (see the xfail below)
    plan = _plan({"s": [node]}, ["s"], with_deps=True)
    assert len(plan.tiers) == 3000
    assert plan.tiers[-1][0].tasks[0].relpath == node.relpath


def test_long_chain_identity_without_priming() -> None:
    node = Node("n0")
    for i in range(1, 500):
        node = Node(f"n{i}", (node,))
    assert node.relpath.startswith("Node/name=n499,deps=")
    plan = _plan({"s": [node]}, ["s"], with_deps=True)
    assert len(plan.tiers) == 500


def test_same_artifact_in_two_stages_is_planned_once() -> None:
    plan = _plan({"x": [PRE[0]], "y": [PRE[0], PRE[1]]}, ["x", "y"])
    assert plan.task_count == 2
    assert [(g.stage, len(g.tasks)) for g in plan.groups] == [("x", 1), ("y", 1)]


@pytest.mark.parametrize("reqs,match", [
    (["partition"], "get_requirements\\(\\) must return a dict, got list"),
    ({"gpus": [1, 2]}, "requirement 'gpus'"),
    ({1: "x"}, "requirement 1"),
])
def test_bad_requirements_are_definition_errors(reqs: Any, match: str) -> None:
    with pytest.raises(DefinitionError, match=match):
        _plan({"s": [Node("a")]}, ["s"], resolve=lambda a: reqs)


def _tasks(n: int) -> list[PlannedTask]:
    base = PlannedTask("id", "r", "s", "C", {}, (), ())
    return [replace(base, artifact_id=f"id{i}") for i in range(n)]


def test_chunk_splits_in_order() -> None:
    tasks = _tasks(2500)
    chunks = list(chunk(tasks, 1001))
    assert [len(c) for c in chunks] == [1001, 1001, 498]
    assert [t for c in chunks for t in c] == tasks
    assert [len(c) for c in chunk(_tasks(1001), 1001)] == [1001]
    assert list(chunk([], 5)) == []
    with pytest.raises(ValueError, match="max_size must be at least 1"):
        list(chunk(tasks, 0))


def test_new_task_is_the_same_object_as_the_dataclass_makes() -> None:
    """The planner's fast constructor must set every field (one added to PlannedTask too)."""
    from experiments.model.task import RunCommand
    from experiments.plan.model import new_task

    values = ("id", "Rel/x-1", "stage", "Cls", ("d1",), ("Dep/y-2",), (RunCommand("true"),),
              object())
    made, fast = PlannedTask(*values), new_task(*values)
    assert made == fast
    assert [getattr(fast, n) for n in PlannedTask.__slots__] == list(values)
    assert len(PlannedTask.__slots__) == len(values)


def test_a_stage_classified_inline_decides_as_the_general_visit_does() -> None:
    """``visit_stage`` takes the common case (neither built nor live, dependencies classified)
    without ``visit``'s stack; on a grid mixing every case its decisions equal ``visit``'s:
    skips, missing dependencies, order, stage and tier of each artifact."""
    from experiments.plan.graph import _Planner

    a, b, c = Node("a"), Node("b"), Node("c")
    d = Node("d", deps=(a, b))      # both dependencies in the first stage
    e = Node("e", deps=(d, c))      # d in this stage, c built
    f = Node("f", deps=(Node("x"),))  # x in no stage: missing without --with-deps
    g = Node("g", deps=(Node("h"),))  # h listed in a later stage
    stages: dict[str, Sequence[Artifact]] = {
        "one": [a, b, c, a], "two": [d, e, f, g, Node("live")], "three": [Node("h"), e]}
    built = {c.relpath}
    live = {Node("live").artifact_id: "77"}
    for with_deps in (False, True):
        planners = [_Planner(stages, with_deps, lambda art: art.relpath in built, live,
                             list(stages)) for _ in range(2)]
        for name, arts in stages.items():
            planners[0].visit_stage(arts, name)
            for art in arts:
                planners[1].visit(art, name)
        inline, general = planners
        assert [(x.relpath, s, t) for x, s, t in inline.order] == [
            (x.relpath, s, t) for x, s, t in general.order]
        assert inline.status == general.status and inline.tier == general.tier
        assert inline.skipped == general.skipped and inline.missing == general.missing
    assert [x.relpath for x, _, _ in inline.order][:4] == [a.relpath, b.relpath, d.relpath,
                                                           e.relpath]
