"""``invalidate`` (experiments.verbs.invalidate) on FakeBackend: which built artifacts a
``--where`` chooses, their dependents in any stage with ``downstream``, a refusal that changes
nothing while a live job holds one, and markers moved aside, never deleted."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, ArtifactSet, Task, paths, verbs
from experiments.backends.fake import FakeBackend
from experiments.errors import ExperimentsError
from experiments.session import Session
from experiments.verbs.invalidate import apply, matches, select
from tests.support.experiments import FakeExecutor


class Size(enum.Enum):
    SMALL = "s"
    LARGE = "l"


@dataclass(frozen=True)
class Pre(Artifact):
    lr: float
    size: Size = Size.SMALL

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass(frozen=True)
class Fine(Artifact):
    base: Pre
    data: str

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@pytest.fixture
def session(tmp_path: Path, fake: FakeBackend) -> Session:
    pre = ArtifactSet.from_product(cls=Pre, params={"lr": [0.1, 0.2], "size": list(Size)})
    ex = FakeExecutor(project="inv", artifact_path=str(tmp_path / "a"), code_path=str(tmp_path))
    ex.stage("pre", pre)
    ex.stage("fine", ArtifactSet.join_product(pre, ["x"]).map(lambda m, d: Fine(base=m, data=d)))
    session = Session.open(ex)
    verbs.launch(session, ["pre"])
    fake.finish("100")  # every Pre built; no Fine launched yet
    verbs.launch(session, ["fine"])
    return session


def test_where_chooses_built_artifacts_and_downstream_adds_their_dependents(
        session: Session, fake: FakeBackend) -> None:
    fake.finish("101")
    only = select(session, ["pre"], where=["lr=0.1", "size=LARGE"])
    assert [(t.stage, t.why) for t in only.targets] == [("pre", "selected")]
    chosen = only.targets[0].relpath
    both = select(session, ["pre"], where=["lr=0.1", "size=LARGE"], downstream=True)
    assert [(t.stage, t.why) for t in both.targets] == [
        ("pre", "selected"), ("fine", f"downstream of {chosen}")]
    done = apply(both)
    assert sorted(done.moved) == sorted(t.relpath for t in both.targets)
    for relpath, aside in done.moved.items():
        assert not Path(paths.done_marker(done.root, relpath)).exists()
        assert Path(aside).is_file() and ".done.invalidated-" in aside
    assert len(select(session, ["pre"]).targets) == 3  # the one moved aside is not built now


def test_a_live_job_holding_a_chosen_artifact_refuses_and_changes_nothing(
        session: Session) -> None:
    with pytest.raises(ExperimentsError, match=r"cannot invalidate 2 artifact\(s\) a live job "
                                               r"holds: Fine/.* \(job 101\)"):
        select(session, ["pre"], where=["lr=0.2"], downstream=True)
    assert len(select(session, ["pre"], where=["lr=0.2"]).targets) == 2  # alone: not held


def test_an_unknown_where_key_and_a_missing_stage_are_said(session: Session) -> None:
    with pytest.raises(ExperimentsError, match="stage 'pre' has no parameter 'base.lr'; its "
                                               "parameters are: lr, size"):
        select(session, ["pre"], where=["base.lr=0.1"])
    with pytest.raises(ExperimentsError, match="name the stage"):
        select(session, [])
    with pytest.raises(ExperimentsError, match="write it as key=value"):
        select(session, ["pre"], where=["lr"])


@pytest.mark.parametrize(("actual", "wanted", "same"), [
    (1.0, 1, True), (1, 1.5, False), (True, 1, False), (1, True, False), (True, True, True),
    (Size.LARGE, "LARGE", True), (Size.LARGE, "l", True), (Size.LARGE, "s", False),
    ((1, 2), [1, 2.0], True), ({"a": 1}, {"a": 1.0}, True), ("1", 1, False),
])
def test_where_values_compare_by_value_not_by_python_type(actual: object, wanted: object,
                                                         same: bool) -> None:
    assert matches(actual, wanted) is same
