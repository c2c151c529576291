"""The static split of a launch's concurrency budget over its arrays."""

from __future__ import annotations

import itertools

import pytest

from experiments.backends.slurm.budget import Share, split


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
