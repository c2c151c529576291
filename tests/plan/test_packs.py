"""Pack sizes and time limits (pure), packed layouts, and how a spec maps an index to a pack."""

from __future__ import annotations

import pytest

from experiments.errors import DefinitionError
from experiments.plan import Group, Plan, PlannedTask
from experiments.plan.lanes import Wait, Where, describe_arrays, layout_plan
from experiments.plan.packs import PackFit, fit_pack, pack_count, smallest_fitting
from experiments.resources import Resources, common_resources
from experiments.worker import specs

H = 3600


# -- fit_pack: N × time, pack_time, MaxTime ----------------------------------------------------
def test_a_pack_asks_n_times_the_artifacts_time() -> None:
    assert fit_pack(50, 60, None, None) == PackFit(50, 3000)
    assert fit_pack(50, 60, None, 4 * H) == PackFit(50, 3000)


def test_a_pack_over_max_time_is_made_smaller_and_capped() -> None:
    fit = fit_pack(50, 10 * 60, None, 1 * H)  # 50 × 10 min = 8 h 20 > 1 h
    assert (fit.size, fit.time_s) == (6, 6 * 600)
    assert fit.time_s is not None and fit.time_s <= H
    assert "exceeds the partition's MaxTime (01:00:00): 6 per task" in fit.why


def test_exactly_max_time_fits() -> None:
    assert fit_pack(6, 600, None, H) == PackFit(6, H)


def test_an_artifact_that_alone_fills_max_time_is_not_packed() -> None:
    fit = fit_pack(10, 2 * H, None, H)
    assert (fit.size, fit.time_s) == (1, 2 * H)  # its own time, as unpacked (no silent cut)
    assert "not packed" in fit.why
    assert fit_pack(10, 40 * 60, None, H).size == 1  # two would not fit either


def test_pack_time_replaces_n_times_time() -> None:
    assert fit_pack(50, 60, 20 * 60, None) == PackFit(50, 1200)
    assert fit_pack(50, None, 20 * 60, H) == PackFit(50, 1200)


def test_pack_time_over_max_time_is_capped_and_the_pack_shrinks_in_proportion() -> None:
    fit = fit_pack(40, 60, 4 * H, H)
    assert (fit.size, fit.time_s) == (10, H)
    assert "pack_time 04:00:00 exceeds" in fit.why
    assert fit_pack(2, None, 10 * H, H).size == 1


def test_without_time_the_limit_is_left_alone() -> None:
    assert fit_pack(20, None, None, H) == PackFit(20, None)


def test_pack_must_be_positive() -> None:
    with pytest.raises(ValueError):
        fit_pack(0, 60, None, None)


def test_pack_requirements_are_read_and_checked() -> None:
    res = common_resources({"pack": 50, "pack_time": "2:00:00", "time": "1:00"}, "A/x")
    assert (res.pack, res.pack_time_s, res.time_s) == (50, 2 * H, 60)
    assert common_resources({}, "A/x").pack == 1
    for bad in ({"pack": 0}, {"pack": True}, {"pack": 2.5}, {"pack_time": "UNLIMITED"},
                {"pack_time": "soon"}):
        with pytest.raises(DefinitionError, match="A/x: requirement 'pack"):
            common_resources(bad, "A/x")


def test_pack_keys_are_not_sbatch_options() -> None:
    from experiments.backends.slurm.sbatch_options import slurm_options

    assert slurm_options({"pack": 5, "pack_time": "1:00:00", "time": "5"}, where="x") == [
        ("time", "5")]


# -- counting and the smallest pack that fits ---------------------------------------------------
def test_pack_count_and_smallest_fitting() -> None:
    assert [pack_count(n, 50) for n in (0, 1, 50, 51, 1000)] == [0, 1, 1, 2, 20]
    assert smallest_fitting(lambda p: pack_count(500, p), 100, 500) == 5
    assert smallest_fitting(lambda p: pack_count(500, p), 99, 500) == 6
    assert smallest_fitting(lambda p: pack_count(500, p), 500, 500) == 1
    assert smallest_fitting(lambda p: 2 * pack_count(500, p), 1, 500) is None


# -- packed layouts -----------------------------------------------------------------------------
RES = Resources(requirements=(("partition", "cpu"),))
PACKED = Resources(requirements=(("pack", 3),), pack=3)


def _task(name: str, deps: tuple[str, ...] = ()) -> PlannedTask:
    return PlannedTask(name, name, "s", "C", deps, deps)


def _plan(up: list[PlannedTask], down: list[PlannedTask], up_res: Resources = RES,
          down_res: Resources = RES) -> Plan:
    return Plan(("up", "down"), ((Group("up", 0, up_res, tuple(up)),),
                                 (Group("down", 1, down_res, tuple(down)),)))


def test_a_packed_group_shares_indices_and_counts_one_task_per_pack() -> None:
    ups = [_task(f"u{i}") for i in range(7)]
    (arr,) = layout_plan(Plan(("up",), ((Group("up", 0, PACKED, tuple(ups)),),)), 100,
                         packs=[3])
    assert arr.indices == (0, 0, 0, 1, 1, 1, 2)
    assert (arr.task_count, arr.array_spec(), arr.pack) == (3, "0-2", 3)
    assert describe_arrays([arr]) == [
        "array 0 (up, tier 0): 7 artifact(s) in 3 task(s) of up to 3 at [0-2], waits for "
        "nothing"]


def test_packs_are_chunked_at_max_array_size_counted_in_packs() -> None:
    ups = [_task(f"u{i}") for i in range(10)]
    arrays = layout_plan(Plan(("up",), ((Group("up", 0, PACKED, tuple(ups)),),)), 2,
                         packs=[3])
    assert [a.indices for a in arrays] == [(0, 0, 0, 1, 1, 1), (0, 0, 0, 1)]


def test_dependents_of_a_packed_array_wait_for_all_of_it_never_task_by_task() -> None:
    ups = [_task(f"u{i}") for i in range(6)]
    downs = [_task(f"d{i}", (f"u{i}",)) for i in range(6)]
    up, down = layout_plan(_plan(ups, downs, up_res=PACKED), 100, packs=[3, 1])
    assert down.wait is Wait.ALL and down.upstream == ("@0",) and down.pack == 1
    assert down.indices == tuple(range(6))


def test_a_packed_dependent_group_waits_for_all_of_its_upstream_arrays() -> None:
    ups = [_task(f"u{i}") for i in range(6)]
    downs = [_task(f"d{i}", (f"u{i}",)) for i in range(6)]
    up, down = layout_plan(_plan(ups, downs, down_res=PACKED), 100, packs=[1, 3])
    assert up.wait is Wait.NONE
    assert (down.wait, down.upstream, down.indices) == (Wait.ALL, ("@0",), (0, 0, 0, 1, 1, 1))


def test_unpacked_on_unpacked_still_uses_lanes() -> None:
    ups = [_task(f"u{i}") for i in range(4)]
    downs = [_task(f"d{i}", (f"u{i}",)) for i in range(4)]
    _, down = layout_plan(_plan(ups, downs), 100, packs=[1, 1])
    assert down.wait is Wait.CORR


def test_a_live_packed_job_is_waited_for_whole() -> None:
    downs = [_task(f"d{i}", (f"u{i}",)) for i in range(4)]
    plan = Plan(("down",), ((Group("down", 1, RES, tuple(downs)),),))
    live = {f"u{i}": Where("77", i // 2, packed=True) for i in range(4)}
    (down,) = layout_plan(plan, 100, live)
    assert (down.wait, down.upstream) == (Wait.ALL, ("77",))
    unpacked = {f"u{i}": Where("77", i) for i in range(4)}
    assert layout_plan(plan, 100, unpacked)[0].wait is Wait.CORR


# -- the spec: which positions an index builds ---------------------------------------------------
def test_array_layout_and_positions() -> None:
    assert specs.array_layout([2, 5]) == ((2, 5), ())
    assert specs.array_layout([0, 0, 0, 1, 1, 2]) == ((), (0, 3, 5, 6))
    packed = specs.SpecHeader("p", "s", "j", "/a", "/c", packs=(0, 3, 5, 6))
    assert [packed.positions(i) for i in range(3)] == [range(0, 3), range(3, 5), range(5, 6)]
    with pytest.raises(IndexError):
        packed.positions(3)
    assert specs.array_layout([4, 4, 9]) == ((4, 9), (0, 2, 3))
    sparse = specs.SpecHeader("p", "s", "j", "/a", "/c", indices=(4, 9), packs=(0, 2, 3))
    assert sparse.positions(9) == range(2, 3)
    assert specs.SpecHeader("p", "s", "j", "/a", "/c").positions(7) == range(7, 8)


# -- the partition's MaxTime, as Slurm prints it ------------------------------------------------
def test_packs_fit_the_policed_clusters_partitions() -> None:
    from pathlib import Path

    from experiments.backends.slurm.limits import parse_partitions
    from experiments.backends.slurm.sbatch_options import with_time
    from experiments.backends.slurm.validate import describe_pack

    data = Path(__file__).resolve().parents[1] / "backends/slurm/data"
    parts = parse_partitions((data / "policed_scontrol_show_partition.txt").read_text())
    short, medium = parts["short"].max_time_s, parts["medium"].max_time_s
    assert (short, medium) == (H, 4 * H)
    fit = fit_pack(50, 5 * 60, None, short)
    assert (fit.size, fit.time_s) == (12, H)
    assert fit_pack(50, 5 * 60, None, medium) == PackFit(48, 4 * H, fit_pack(
        50, 300, None, medium).why)
    assert with_time([("cpus-per-task", "2"), ("time", "5:00"), ("x", None)], H) == [
        ("cpus-per-task", "2"), ("time", "01:00:00"), ("x", None)]
    assert describe_pack(50, fit) == (
        "pack: up to 12 artifact(s) per task, --time=01:00:00 per task (50 × 00:05:00 exceeds "
        "the partition's MaxTime (01:00:00): 12 per task)")


def test_efficiency_reads_a_packs_accounting_once_not_per_artifact() -> None:
    from experiments.states import TaskKey, TaskUsage
    from experiments.tracking.store import JobRecord
    from experiments.verbs.efficiency import _tasks

    rec = JobRecord(name="n", backend="slurm", stage="s", tier=0, job_id="9",
                    tasks=[[f"id{i}", f"A/{i}"] for i in range(5)],
                    array_indices=[0, 0, 0, 1, 1])
    used = {TaskKey("9", 0): TaskUsage("COMPLETED", 30), TaskKey("9", 1): TaskUsage(
        "COMPLETED", 20)}
    rows = _tasks(rec, used, common_resources({"time": "5"}, "x"), "/nonexistent-root")
    assert [(r.task, r.relpath, r.elapsed_s, r.time_s) for r in rows] == [
        ("9_0", "A/0 and 2 more (a pack)", 30, None), ("9_1", "A/3 and 1 more (a pack)", 20, None)]
    plain = JobRecord(name="n", backend="slurm", stage="s", tier=0, job_id="9",
                      tasks=[["a", "A/a"], ["b", "A/b"]], array_indices=[4, 7])
    lanes = _tasks(plain, {TaskKey("9", 7): TaskUsage("COMPLETED", 3)},
                   common_resources({"time": "5"}, "x"), "/nonexistent-root")
    assert [(r.task, r.relpath, r.time_s) for r in lanes] == [("9_7", "A/b", 300)]  # Slurm's id
