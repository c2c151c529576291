"""How many artifacts one array task builds, and for how long it asks (pure).

The ``pack`` requirement asks for up to N artifacts of a group per array task, built one after
the other by one worker. The task's time limit is N × the artifact's ``time`` unless
``pack_time`` gives the pack's own, and it must fit the partition's ``MaxTime``: a pack that
would exceed it is made smaller (see docs/cluster.md, "Packing short artifacts").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PackFit:
    """A group's pack size after the partition's limit, and the pack's time limit.

    ``time_s`` None: the task's ``--time`` is left as the artifact's (unknown: no ``time``).
    ``why``: one line saying what made the pack smaller than asked ("" when nothing did).
    """

    size: int
    time_s: int | None = None
    why: str = ""


def fit_pack(pack: int, time_s: int | None, pack_time_s: int | None,
             max_time_s: int | None) -> PackFit:
    """The pack size and time for ``pack`` artifacts of ``time_s`` each (``pack_time_s``: the
    pack's own limit, if given) under a partition limit of ``max_time_s`` (None: unlimited).

    A pack never asks more than ``max_time_s``; it shrinks instead, to at least one artifact.
    An artifact that alone exceeds the limit is not packed (its time stays its own).
    """
    if pack < 1:
        raise ValueError(f"pack must be at least 1, got {pack}")
    if pack_time_s is not None:
        return _fit_pack_time(pack, pack_time_s, max_time_s)
    if time_s is None:
        return PackFit(pack)
    if pack == 1:
        return PackFit(1, time_s)
    if max_time_s is None or pack * time_s <= max_time_s:
        return PackFit(pack, pack * time_s)
    size = max_time_s // time_s if time_s else pack
    if size <= 1:
        return PackFit(1, time_s, f"one artifact's time ({_hms(time_s)}) already fills the "
                                  f"partition's MaxTime ({_hms(max_time_s)}): not packed")
    return PackFit(size, size * time_s,
                   f"{pack} × {_hms(time_s)} exceeds the partition's MaxTime "
                   f"({_hms(max_time_s)}): {size} per task")


def _fit_pack_time(pack: int, pack_time_s: int, max_time_s: int | None) -> PackFit:
    if max_time_s is None or pack_time_s <= max_time_s:
        return PackFit(pack, pack_time_s)
    size = max(1, pack * max_time_s // pack_time_s)
    return PackFit(size, max_time_s,
                   f"pack_time {_hms(pack_time_s)} exceeds the partition's MaxTime "
                   f"({_hms(max_time_s)}): {size} per task, {_hms(max_time_s)} each")


def pack_count(n: int, size: int) -> int:
    """How many array tasks ``n`` artifacts take in packs of ``size``."""
    return -(-n // size)


def smallest_fitting(count: Callable[[int], int], allowance: int, largest: int,
                     smallest: int = 1) -> int | None:
    """The smallest pack size ``p`` in ``smallest..largest`` whose ``count(p)`` (array tasks,
    which must not grow with ``p``) is at most ``allowance``; None when even ``largest`` is too
    many. A ``smallest`` known not to be too large (no smaller pack can fit) saves layouts."""
    lo, hi = max(1, min(smallest, largest)), largest
    if count(lo) <= allowance:
        return lo
    if count(largest) > allowance:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if count(mid) <= allowance:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
