"""The static split of a launch's concurrency budget over its arrays."""

from __future__ import annotations

import itertools

import pytest

from experiments.backends.slurm.budget import Share, split, waits


def test_no_budget_keeps_each_arrays_own_throttle() -> None:
    assert split([10, 5], [None, 3], None) == [Share(None), Share(3)]


@pytest.mark.parametrize("budget", [1, 2, 3, 5, 8, 13, 64])
@pytest.mark.parametrize("sizes", [[1], [100], [100, 100], [1000, 1, 1], [3, 7, 2, 9, 4],
                                   [5] * 12])
def test_throttles_never_sum_above_the_budget(sizes: list[int], budget: int) -> None:
    for caps in ([None] * len(sizes), [2 if i % 2 else None for i in range(len(sizes))]):
        shares = split(sizes, caps, budget)
        assert len(shares) == len(sizes)
        assert all(s.throttle is not None and s.throttle >= 1 for s in shares)
        assert all(cap is None or s.throttle <= cap  # type: ignore[operator]
                   for s, cap in zip(shares, caps, strict=True))
        if len(sizes) <= budget:
            assert sum(s.throttle for s in shares) <= budget  # type: ignore[misc]
            assert all(s.after is None for s in shares)
        else:
            assert all(s.throttle == 1 for s in shares)
            assert [s.after for s in shares] == [None] * budget + list(range(len(sizes) - budget))


def test_chained_arrays_never_run_more_than_the_budget() -> None:
    """Simulate every order of array ends: an array runs only after the one it waits for."""
    budget, n = 2, 5
    shares = split([1] * n, [None] * n, budget)
    for order in itertools.permutations(range(n)):
        ended: set[int] = set()
        running: set[int] = set()
        for nxt in order:
            # start every array whose wait is over
            running |= {i for i in range(n) if i not in ended
                        and (shares[i].after is None or shares[i].after in ended)}
            assert len(running) <= budget
            if nxt in running:
                running.discard(nxt)
                ended.add(nxt)


def test_unused_share_goes_to_arrays_that_can_use_it() -> None:
    assert [s.throttle for s in split([1, 100], [None, None], 10)] == [1, 9]
    assert [s.throttle for s in split([100, 100], [None, None], 10)] == [5, 5]
    assert [s.throttle for s in split([4, 4], [None, None], 10)] == [4, 4]


# -- the project's budget across launches (issue 23, item 6) ---------------------------------
@pytest.mark.parametrize("n, budget", [(3, 5), (7, 3), (12, 4), (5, 1)])
def test_waits_without_earlier_launches_are_splits_after(n: int, budget: int) -> None:
    shares = split([1] * n, [None] * n, budget)
    assert waits([s.throttle for s in shares], [], budget) == \
        [[s.after] if s.after is not None else [] for s in shares]


def test_new_arrays_take_free_slots_first_then_wait_for_their_holders() -> None:
    # budget 4; an earlier launch's array 900 holds 3 slots: one slot is free
    assert waits([1, 1, 1], [("900", 3)], 4) == [[], ["900"], ["900"]]
    assert waits([4], [("900", 3)], 4) == [["900"]]  # all four slots: after 900 ended
    assert waits([2, 2], [("900", 1), ("901", 1)], 4) == [[], ["900", "901"]]


def test_slots_held_beyond_the_budget_are_all_waited_for() -> None:
    # earlier launches with their own --max-running hold 5 of a budget of 2
    assert waits([2], [("900", 3), ("901", 2)], 2) == [["900", "901"]]


def test_every_schedule_the_waits_allow_stays_within_the_budget() -> None:
    """Slot by slot, an array starts only after every earlier occupant ended: run the arrays
    in the latest order the dependencies allow and count throttles of what overlaps."""
    held = [("a", 2), ("b", 1)]
    budget = 4
    throttles = [s.throttle or 0 for s in split([3, 5, 2, 8, 1], [None] * 5, budget)]
    deps = waits(throttles, held, budget)
    # arrays start at time = 1 + latest end of what they wait for; each lasts 1
    end: dict[object, int] = {"a": 1, "b": 1}
    start = []
    for i, d in enumerate(deps):
        start.append(max([end[w] for w in d], default=0))
        end[i] = start[-1] + 1
    for t in range(max(end.values()) + 1):
        running = sum(th for i, th in enumerate(throttles) if start[i] <= t < end[i])
        running += sum(n for job, n in held if t < end[job])
        assert running <= budget, (t, running, deps)
