"""gc's choice of moved-aside done markers (issue 16, item 7): by stamp, and the newest one of
an artifact not rebuilt since stays (the only trace of the build its files came from)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from experiments import paths
from experiments.verbs.housekeeping import DAY_S, _old_markers


def _stamp(days_ago: float) -> str:
    when = datetime.fromtimestamp(time.time() - days_ago * DAY_S, timezone.utc)
    return when.strftime("%Y%m%dT%H%M%SZ")


def _markers(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("build-id\n")


def test_old_markers_go_and_the_last_trace_of_an_unbuilt_artifact_stays(tmp_path: Path) -> None:
    old, older, young = (paths.INVALIDATED + _stamp(d) for d in (40, 50, 1))
    cutoff = time.time() - 30 * DAY_S
    rebuilt = tmp_path / "rebuilt"
    _markers(rebuilt, old, older, young, paths.DONE)
    assert sorted(_old_markers(str(rebuilt), cutoff)) == sorted(
        [str(rebuilt / old), str(rebuilt / older)])  # the young one stays: not old enough

    unbuilt = tmp_path / "unbuilt"
    _markers(unbuilt, old, older, old + "-2")  # no .done: the newest stays whatever its age
    assert sorted(_old_markers(str(unbuilt), cutoff)) == sorted(
        [str(unbuilt / older), str(unbuilt / old)])

    odd = tmp_path / "odd"
    _markers(odd, paths.INVALIDATED + "not-a-stamp", paths.DONE)
    assert _old_markers(str(odd), cutoff) == []  # unreadable stamps are never old
    assert _old_markers(str(tmp_path / "missing"), cutoff) == []
