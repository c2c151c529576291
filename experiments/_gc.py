"""Pausing the cyclic garbage collector while a million small objects are made.

Planning a grid allocates several objects per artifact (the artifact's caches, its task, its
steps) and none of them form reference cycles; the collector would still walk the whole, growing
heap again and again (its oldest generation is collected in proportion to the heap), which costs
a fifth of the time at 100,000 artifacts and more beyond. Reference counting frees everything as
usual meanwhile.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused(freeze: bool = False) -> Iterator[None]:
    """No cyclic collection inside the block (restored after it, also on error). With
    ``freeze``, what exists at its end is moved out of the collector's sight first
    (``gc.freeze``): the passes after it no longer walk the plan just made (a second per pass
    at a million artifacts); :func:`thawed_after` gives it back."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if freeze:
            gc.freeze()
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def thawed_after() -> Iterator[None]:
    """Objects frozen inside the block (:func:`paused` with ``freeze``) are seen by the
    collector again after it (``gc.unfreeze``), also on error. Meanwhile reference counting
    frees them as usual; only cycles among them wait for the block's end."""
    try:
        yield
    finally:
        gc.unfreeze()
