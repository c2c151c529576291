"""The worker refuses a spec whose artifact folder lies outside the artifact root (issue 23,
item 7): a ``relpath`` edited to ``../../x``, or a symlink inside the root that leads out. It
writes nothing there — no folder, no status file, no done marker — and says why in the log's
last line, which ``status`` shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.tracking.logfiles import early_failure
from tests.support.worker import REL
from tests.support.worker import builder as _builder
from tests.support.worker import run as _run
from tests.support.worker import write_spec as _write


@pytest.mark.parametrize("relpath", ["../../../escaped", "../escaped/x", "Model/../../escaped"])
def test_a_relpath_leading_out_of_the_root_is_refused(tmp_path: Path, relpath: str) -> None:
    b = _builder(tmp_path, relpath=relpath)
    b.run_command("echo ran > ran.txt")
    spec = _write(tmp_path, [b])
    before = sorted(p for p in tmp_path.rglob("*"))
    res = _run(spec)
    assert res.returncode == 1, res.stdout
    assert f"refusing to build {relpath!r}" in res.stdout and "lies outside the artifact root" \
        in res.stdout
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written anywhere
    log = tmp_path / "task.log"
    log.write_text(res.stdout)
    assert (early_failure(log) or "").startswith(f"refusing to build {relpath!r}")


def test_a_symlink_leading_out_of_the_root_is_refused(tmp_path: Path) -> None:
    b = _builder(tmp_path)
    b.run_command("echo ran")
    spec = _write(tmp_path, [b])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    spec.art().parent.mkdir(parents=True)
    spec.art().symlink_to(elsewhere)  # Model/x=1-… -> elsewhere (a lab-mate's planted link)
    res = _run(spec)
    assert res.returncode == 1, res.stdout
    assert f"refusing to build {REL!r}: its folder {elsewhere}" in res.stdout
    assert list(elsewhere.iterdir()) == []


def test_a_relpath_inside_the_root_still_builds(tmp_path: Path) -> None:
    b = _builder(tmp_path, relpath="Model/sub/../x=1")
    b.run_command("true")
    spec = _write(tmp_path, [b])
    res = _run(spec)
    assert res.returncode == 0, res.stdout
    assert (spec.root / "Model/x=1/.done").exists()
