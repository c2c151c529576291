"""A built artifact someone else could have changed (issue 25), end to end on the local
backend: ``status``, ``table`` and a dependent's worker say so instead of "built", and the marker
names its builder. The suite runs as root; ``expuser2`` (a test user) is the lab-mate."""

from __future__ import annotations

import json
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments import Artifact, LocalExecutor, Task, paths
from experiments.tracking.markers import DoneIndex
from experiments.tracking.status import ArtifactState as S


@pytest.fixture
def other(test_users: tuple[str, ...]) -> pwd.struct_passwd:
    return pwd.getpwnam(test_users[1])


@dataclass(frozen=True)
class Model(Artifact):
    lr: float

    def construct(self, builder: Task) -> None:
        builder.run_command(f"echo '{{\"acc\": 0.91}}' > {builder.directory}/metrics.json")


@dataclass(frozen=True)
class Use(Artifact):
    model: Model

    def construct(self, builder: Task) -> None:
        src = f"{builder.artifact_path}/{self.model.relpath}/metrics.json"
        builder.run_command(f"cp {src} {builder.directory}/used.json")


def _lab(tmp_path: Path) -> LocalExecutor:
    ex = LocalExecutor(project="lab", artifact_path=str(tmp_path / "out"),
                       code_path=str(tmp_path))
    ex.stage("train", [Model(0.1)])
    ex.stage("use", [Use(Model(0.1))])
    return ex


def test_a_swapped_output_is_modified_not_built_and_is_not_consumed(
        tmp_path: Path, other: pwd.struct_passwd) -> None:
    ex = _lab(tmp_path)
    ex.launch(["train"])
    folder = tmp_path / "out" / Model(0.1).relpath
    done = json.loads((folder / paths.DONE).read_text())
    assert done["user"] == "root" and done["uid"] == 0  # the marker names its builder
    assert json.loads((folder / paths.STATUS).read_text())["user"] == "root"
    (folder / "metrics.json").write_text('{"acc": 0.99}')  # a lab-mate's swap, with its owner
    os.chown(folder / "metrics.json", other.pw_uid, other.pw_gid)
    assert ex.status(["train"]).stages[0].counts == {S.BUILT: 1}  # folder still safely ours
    [view] = ex.artifacts("train")
    assert view.state is S.MODIFIED and "belongs to expuser2" in view.detail
    assert ex.table("train").column("state") == ["modified"]
    result = ex.launch(["use"])
    used = tmp_path / "out" / Use(Model(0.1)).relpath
    assert not (used / "used.json").exists() and not (used / paths.DONE).exists()
    record = json.loads((used / paths.STATUS).read_text())
    assert record["state"] == "dependency_failed" and "is not as its build left it" in (
        record["error"]) and "belongs to expuser2" in record["error"]
    assert result.records


def test_status_flags_a_built_artifact_in_a_folder_others_can_write(tmp_path: Path) -> None:
    ex = _lab(tmp_path)
    ex.launch(["train"])
    folder = tmp_path / "out" / Model(0.1).relpath
    folder.chmod(0o777)
    [stage] = ex.status(["train"]).stages
    assert stage.counts == {S.MODIFIED: 1}
    [problem] = stage.problems
    assert problem.state is S.MODIFIED and "every user can write in it" in problem.detail
    assert DoneIndex(str(tmp_path / "out")).problem(Model(0.1).relpath)
    folder.chmod(0o755)
    assert ex.status(["train"]).stages[0].counts == {S.BUILT: 1}
