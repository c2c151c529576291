"""The dependency layout: lanes on upstream indices, signatures, chunking, live upstreams."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from experiments.plan import Group, Plan, PlannedTask
from experiments.plan.lanes import (
    ArrayLayout,
    Wait,
    Where,
    describe_arrays,
    index_ranges,
    layout_plan,
)
from experiments.resources import Resources

RES = Resources(requirements=(("partition", "cpu"),))
THROTTLED = Resources(requirements=(("max_parallel", 2),), max_parallel=2)


def _task(name: str, deps: Sequence[str] = ()) -> PlannedTask:
    return PlannedTask(artifact_id=name, relpath=name, stage="s", class_name="C",
                       dep_ids=tuple(deps), dep_relpaths=tuple(deps))


def _plan(*tiers: Sequence[tuple[str, Sequence[PlannedTask]]],
          resources: Resources = RES) -> Plan:
    groups = tuple(tuple(Group(stage, n, RES if n == 0 else resources, tuple(tasks))
                         for stage, tasks in tier) for n, tier in enumerate(tiers))
    return Plan(("s",), groups)


def _ups(n: int) -> list[PlannedTask]:
    return [_task(f"u{i}") for i in range(n)]


def _names(arr: ArrayLayout) -> list[str]:
    return [t.artifact_id for t in arr.tasks]


def test_one_to_one_dependents_wait_for_their_own_counterpart() -> None:
    plan = _plan([("pre", _ups(4))], [("fine", [_task(f"d{i}", [f"u{i}"]) for i in (2, 0, 3, 1)])])
    up, down = layout_plan(plan, 100)
    assert up.wait is Wait.NONE and up.indices == (0, 1, 2, 3)
    assert down.wait is Wait.CORR and down.upstream == ("@0",)
    assert _names(down) == ["d0", "d1", "d2", "d3"] and down.indices == (0, 1, 2, 3)
    assert down.dense


def test_a_chain_of_three_tiers_waits_counterpart_by_counterpart_at_every_step() -> None:
    """Places of every tier but the last are kept for the tier above (the last tier's are not
    needed: nothing in the plan depends on them)."""
    plan = _plan([("pre", _ups(3))], [("mid", [_task(f"m{i}", [f"u{i}"]) for i in range(3)])],
                 [("top", [_task(f"t{i}", [f"m{i}"]) for i in (1, 0, 2)])])
    up, mid, top = layout_plan(plan, 100)
    assert up.wait is Wait.NONE
    assert mid.wait is Wait.CORR and mid.upstream == ("@0",) and mid.indices == (0, 1, 2)
    assert top.wait is Wait.CORR and top.upstream == ("@1",)
    assert _names(top) == ["t0", "t1", "t2"] and top.indices == (0, 1, 2)


def test_join_product_gives_one_lane_per_joined_value() -> None:
    fine = [_task(f"d{i}{v}", [f"u{i}"]) for i in range(3) for v in "ab"]
    arrays = layout_plan(_plan([("pre", _ups(3))], [("fine", fine)]), 100)
    assert len(arrays) == 3
    assert [_names(a) for a in arrays[1:]] == [["d0a", "d1a", "d2a"], ["d0b", "d1b", "d2b"]]
    assert all(a.wait is Wait.CORR and a.indices == (0, 1, 2) for a in arrays[1:])


def test_alignment_survives_chunking_of_the_upstream() -> None:
    fine = [_task(f"d{i}", [f"u{i}"]) for i in range(7)]
    arrays = layout_plan(_plan([("pre", _ups(7))], [("fine", fine)]), 3)
    ups, downs = arrays[:3], arrays[3:]
    assert [a.indices for a in ups] == [(0, 1, 2), (0, 1, 2), (0,)]
    for up, down in zip(ups, downs, strict=True):
        assert down.upstream == (up.ref,) and down.indices == up.indices
        assert [n[1:] for n in _names(down)] == [n[1:] for n in _names(up)]


def test_partly_built_upstream_leaves_sparse_lanes_and_a_free_array() -> None:
    # u1 and u3 are built: their dependents wait for nothing; u0, u2, u4 are built now.
    ups = [_task(f"u{i}") for i in (0, 2, 4)]
    fine = [_task(f"d{i}", [f"u{i}"] if i % 2 == 0 else []) for i in range(5)]
    up, lane, free = layout_plan(_plan([("pre", ups)], [("fine", fine)]), 100)
    assert _names(lane) == ["d0", "d2", "d4"] and lane.indices == (0, 1, 2)
    assert free.wait is Wait.NONE and _names(free) == ["d1", "d3"]


def test_live_upstream_from_an_earlier_launch_keeps_its_indices() -> None:
    fine = [_task("d5", ["old5"]), _task("d7", ["old7"])]
    live = {"old5": Where("123", 5), "old7": Where("123", 7)}
    (lane,) = layout_plan(_plan([], [("fine", fine)]), 100, live)
    assert lane.wait is Wait.CORR and lane.upstream == ("123",)
    assert lane.indices == (5, 7) and lane.array_spec() == "5,7" and not lane.dense


def test_many_to_one_waits_for_whole_arrays_split_by_signature() -> None:
    plan = _plan([("a", _ups(2)), ("b", [_task("v0"), _task("v1")])],
                 [("join", [_task("j0", ["u0", "v0"]), _task("j1", ["u1", "v1"]),
                            _task("k", ["u0"])])])
    plan = Plan(("s",), (plan.tiers[0], plan.tiers[1]))
    arrays = layout_plan(plan, 100)
    joined = [a for a in arrays if a.wait is Wait.ALL]
    assert len(joined) == 1 and joined[0].upstream == ("@0", "@1")
    assert _names(joined[0]) == ["j0", "j1"]
    (lane,) = [a for a in arrays if a.wait is Wait.CORR]
    assert _names(lane) == ["k"] and lane.upstream == ("@0",)


def test_different_upstream_signatures_are_separate_arrays() -> None:
    plan = Plan(("s",), ((Group("a", 0, RES, tuple(_ups(2))),
                          Group("b", 0, THROTTLED, (_task("w0"),))),
                         (Group("e", 1, THROTTLED, (_task("e0", ["u0"]), _task("e1", ["w0"]),
                                                    _task("e2", ["u1"]))),)))
    arrays = layout_plan(plan, 100)
    evals = [a for a in arrays if a.group.stage == "e"]
    assert [(a.wait, a.upstream, _names(a)) for a in evals] == [
        (Wait.ALL, ("@0",), ["e0", "e2"]), (Wait.ALL, ("@1",), ["e1"])]


def test_too_many_lanes_fall_back_to_waiting_for_the_whole_array() -> None:
    fine = [_task(f"d{i}{v}", ["u0"]) for i in range(1) for v in range(5)]
    arrays = layout_plan(_plan([("pre", _ups(1))], [("fine", fine)]), 100, max_lanes=4)
    assert [(a.wait, len(a.tasks)) for a in arrays[1:]] == [(Wait.ALL, 5)]


def test_a_throttled_group_is_not_split_into_lanes() -> None:
    fine = [_task(f"d{i}", [f"u{i}"]) for i in range(3)]
    arrays = layout_plan(_plan([("pre", _ups(3))], [("fine", fine)], resources=THROTTLED), 100)
    assert [a.wait for a in arrays] == [Wait.NONE, Wait.ALL]


def test_free_and_whole_array_waits_are_chunked_densely() -> None:
    arrays = layout_plan(_plan([("pre", _ups(5))]), 2)
    assert [a.indices for a in arrays] == [(0, 1), (0, 1), (0,)]
    with pytest.raises(ValueError):
        layout_plan(_plan([("pre", _ups(1))]), 0)


def test_index_ranges_and_descriptions() -> None:
    assert index_ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert index_ranges([3]) == "3" and index_ranges([]) == ""
    fine = [_task(f"d{i}", [f"u{i}"]) for i in range(2)]
    lines = describe_arrays(layout_plan(_plan([("pre", _ups(2))], [("fine", fine)]), 100))
    assert lines == ["array 0 (pre, tier 0): 2 task(s) at [0-1], waits for nothing",
                     "array 1 (fine, tier 1): 2 task(s) at [0-1], task i waits for task i of "
                     "array 0 (pre)"]
