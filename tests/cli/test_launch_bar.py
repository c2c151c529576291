"""The launch's progress bar is made only when a local run starts building: a Slurm launch
(no task added) neither imports rich.progress nor changes what it prints."""

from __future__ import annotations

import subprocess
import sys

import pytest

from experiments.cli.launch_bar import LazyBar, progress_bar


def test_an_unused_bar_prints_what_an_empty_bar_printed(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    with progress_bar():
        pass
    empty = capsys.readouterr().out
    with LazyBar():
        pass
    assert capsys.readouterr().out == empty == "\n"


def test_rich_progress_loads_only_with_the_first_task() -> None:
    code = ("import sys; from experiments.cli.launch_bar import LazyBar\n"
            "with LazyBar() as bar:\n"
            "    before = 'rich.progress' in sys.modules\n"
            "    t = bar.add_task('build', total=2, failed=0)\n"
            "    bar.update(t, advance=2, failed=1)\n"
            "print(before, 'rich.progress' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert "building" in res.stdout and "2/2" in res.stdout and "1 failed" in res.stdout
    assert res.stdout.splitlines()[-1] == "False True"
