"""The session every verb works over (experiments.session): the process state it sets on
opening, the stages it accepts, one backend object per name, one query per backend."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments import verbs
from experiments.backends.fake import FakeBackend
from experiments.errors import DefinitionError, PlanError
from experiments.experiment import Experiment
from experiments.session import Session, keep_private
from tests.support.experiments import fake_executor


@pytest.fixture(autouse=True)
def _umask_restored() -> Iterator[None]:
    """Opening a session sets the process umask; put it back for the tests after this one."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


def test_opening_applies_the_configs_umask_and_makes_the_home_private(
        tmp_path: Path, experiments_home: Path) -> None:
    experiments_home.mkdir(parents=True)
    os.chmod(experiments_home, 0o755)
    (experiments_home / "config.json").write_text(json.dumps({"umask": "027"}))
    Session.open(fake_executor(tmp_path, "sess"))
    current = os.umask(0o022)
    os.umask(current)
    assert current == 0o027
    assert stat.S_IMODE(experiments_home.stat().st_mode) == 0o700


def test_a_home_owned_by_someone_else_is_left_alone(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("giving a folder to another account needs root (the test suite runs as root)")
    home = tmp_path / "theirs"
    home.mkdir()
    os.chmod(home, 0o755)
    os.chown(home, 4242, 4242)
    keep_private(home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o755
    keep_private(tmp_path / "missing")  # nothing to do, no error


def test_stages_default_to_all_in_definition_order_and_unknown_ones_are_named(
        tmp_path: Path) -> None:
    ex = fake_executor(tmp_path, "sess", stage="b")
    ex.stage("a", ex.experiment().stages["b"])
    session = Session.open(ex)
    assert session.selected(None) == ["b", "a"] and session.selected(["a"]) == ["a"]
    with pytest.raises(PlanError, match="unknown stage 'c'; stages are: b, a"):
        session.selected(["a", "c"])
    empty = Experiment(project="e", artifact_path=str(tmp_path), code_path=str(tmp_path),
                       stages={})
    with pytest.raises(DefinitionError, match=r"no stages are defined; call executor.stage"):
        Session.open(empty).selected(None)


def test_records_are_those_of_tracked_stages_only(tmp_path: Path, fake: FakeBackend) -> None:
    session = Session.open(fake_executor(tmp_path, "sess"))
    assert session.records() == [] and session.records(["nodes"]) == []
    verbs.launch(session)
    assert [r.stage for r in session.records()] == ["nodes"]
    assert session.records(["nodes", "never-launched"]) == session.records()
    assert session.records(["never-launched"]) == []


def test_one_backend_object_per_name_and_one_query_per_backend(
        tmp_path: Path, fake: FakeBackend) -> None:
    other = FakeBackend()
    session = Session.open(fake_executor(tmp_path, "sess"), instances={"other": other})
    assert session.backend() is fake and session.backend("fake") is fake
    assert session.backend("other") is other
    verbs.launch(session)
    records = session.records()
    assert session.backends_for(records) == {"fake": fake}
    fake.calls.clear()
    live = session.live(records + records)
    assert fake.calls["query"] == 1 and other.calls["query"] == 0
    assert len(live.statuses) == 3 and not live.unreachable
    fake.unreachable = True
    assert list(session.live(records).unreachable) == ["fake"]


def test_the_session_backend_is_the_experiments_unless_one_is_asked_for(
        tmp_path: Path, fake: FakeBackend) -> None:
    ex = fake_executor(tmp_path, "sess")
    assert Session.open(ex).backend_name == "fake"
    assert Session.open(ex, backend="local", workers=3).backend_name == "local"
    assert Session.open(ex, workers=3).workers == 3
    assert Session.open(ex).home == str(Path(os.environ["EXPERIMENTS_HOME"]))
