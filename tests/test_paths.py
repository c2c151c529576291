"""On-disk names: project/stage name checks and the layout of the experiments home."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from experiments import DefinitionError, paths
from tests.support.hostile import HOSTILE


@pytest.mark.parametrize("name", ["p", "my-experiment", "a.b_c-1", "9lives", "x" * 100])
def test_good_names(name: str) -> None:
    assert paths.check_name("project", name) == name


@pytest.mark.parametrize("name", [*HOSTILE, "x" * 101, "-lead", ".hidden", "_x", None, 5])
def test_bad_names_rejected(name: Any) -> None:
    with pytest.raises(DefinitionError, match=r"stage name .* is not allowed; use 1-100"):
        paths.check_name("stage", name)


def test_trailing_newline_name_rejected() -> None:
    with pytest.raises(DefinitionError):
        paths.check_name("project", "proj\n")


def test_layout() -> None:
    home = Path("/h")
    assert paths.jobs_file(home, "p", "s") == Path("/h/projects/p/s/jobs.json")
    assert paths.spec_dir(home, "p", "j") == Path("/h/projects/p/specs/j")
    assert paths.launch_lock(home, "p") == Path("/h/projects/p/.launch.lock")
    assert paths.log_file(Path("/l"), "p", "s", "12", 3) == Path("/l/p/s/12_3.log")
    assert paths.done_marker("/a", "M/x") == "/a/M/x/.done"
    assert paths.status_file("/a", "M/x") == "/a/M/x/.status.json"
