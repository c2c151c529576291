"""The Task builder: path confinement, files, YAML, command quoting, storage steps."""

from __future__ import annotations

import base64
import dataclasses
import enum
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from experiments import DefinitionError, Task
from experiments.model.task import (
    CreateFile,
    Download,
    RunCommand,
    Upload,
    step_from_dict,
    step_to_dict,
)
from tests.support.hostile import HOSTILE_NO_NUL

ROOT = "/data/outputs"
REL = "Model/lr=0.1-0123456789ab"
DIR = f"{ROOT}/{REL}"


def _task(root: str = ROOT) -> Task:
    return Task(artifact_path=root, code_path="/code", relpath=REL, where="Model x")


def _content(step: Any) -> bytes:
    assert isinstance(step, CreateFile)
    return base64.b64decode(step.content_b64)


# -- paths ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path,expected", [
    ("config.yaml", f"{DIR}/config.yaml"),
    ("sub/dir/f.txt", f"{DIR}/sub/dir/f.txt"),
    ("./a/../b.txt", f"{DIR}/b.txt"),
    (f"{DIR}/abs.txt", f"{DIR}/abs.txt"),
    (f"{ROOT}/{REL}/config.yaml", f"{DIR}/config.yaml"),  # the seed README's style
])
def test_paths_resolve_inside_artifact_dir(path: str, expected: str) -> None:
    t = _task()
    t.create_file(path, "x")
    assert t.steps[0].path == expected
    assert t.directory == DIR


@pytest.mark.parametrize("path", [
    "../x", "../../etc/passwd", "a/../../x", "/etc/passwd", f"{ROOT}/Other/x",
    f"{DIR}-sibling/x", "/tmp/x",
])
def test_paths_outside_artifact_dir_rejected(path: str) -> None:
    t = _task()
    with pytest.raises(DefinitionError, match=r"Model x: create_file\(.*\) would write outside"):
        t.create_file(path, "x")
    with pytest.raises(DefinitionError, match="would write outside"):
        t.download("gs://b/o", path)
    assert t.steps == []


@pytest.mark.parametrize("path", ["", "a\x00b", None, 5])
def test_bad_paths_rejected(path: Any) -> None:
    with pytest.raises(DefinitionError, match="needs a non-empty path without NUL"):
        _task().create_file(path, "x")


@pytest.mark.parametrize("root", ["/data/x/../outputs", "/data//outputs", "./outputs"])
def test_unnormalised_artifact_path_still_accepts_relative_paths(root: str) -> None:
    t = _task(root)
    t.create_file("config.yaml", "x")
    assert t.steps[0].path.endswith(f"{REL}/config.yaml")


# -- files ----------------------------------------------------------------------------------
def test_create_file_str_and_bytes() -> None:
    t = _task()
    t.create_file("script.sh", "#!/bin/bash\necho héllo")
    t.create_file("data.bin", b"\x00\x01\x02\xff")
    t.create_file("ba.bin", bytearray(b"ab"))
    assert _content(t.steps[0]) == "#!/bin/bash\necho héllo".encode()
    assert _content(t.steps[1]) == b"\x00\x01\x02\xff"
    assert _content(t.steps[2]) == b"ab"
    with pytest.raises(DefinitionError, match=r"needs str or bytes content, got int"):
        t.create_file("x", 5)  # type: ignore[arg-type]
    assert len(t.steps) == 3


def test_create_yaml_file_round_trips_hostile_values() -> None:
    data = {"lr": 1e-4, "epochs": 10, "flag": True, "none": None, "list": [1, "two", 3.5],
            "hostile": list(HOSTILE_NO_NUL), "yes": "yes", "null": "null", "num": "0x10",
            "nested": {"a: b": "- c", "#comment": "x: y"}}
    t = _task()
    t.create_yaml_file("config.yaml", data)
    text = _content(t.steps[0]).decode()
    assert yaml.safe_load(text) == data
    assert yaml.unsafe_load(text) == data  # no active tag: even an unsafe reader builds no object


class Weird:
    pass


class Mode(enum.Enum):
    A = 1


@pytest.mark.parametrize("data", [{"obj": Weird()}, {"mode": Mode.A}, [Weird]])
def test_create_yaml_file_rejects_non_plain_objects(data: Any) -> None:
    t = _task()
    with pytest.raises(DefinitionError, match=r"create_yaml_file\('c.yaml'\) got data YAML "
                                              r"cannot represent safely"):
        t.create_yaml_file("c.yaml", data)
    assert t.steps == []


# -- commands -------------------------------------------------------------------------------
def _bash(cmd: str, cwd: Path) -> str:
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, cwd=cwd, timeout=10,
                         check=True).stdout
    return out.decode("utf-8")


def test_run_command_kwargs_round_trip_through_bash(tmp_path: Path) -> None:
    canary = Path("/tmp") / f"exp-canary-{uuid.uuid4().hex}"
    values = [v.replace("/tmp/x", str(canary)) for v in HOSTILE_NO_NUL]
    values += [f"$(touch {canary})", f"`touch {canary}`", f"'; touch {canary}; '",
               f"\"; touch {canary}; \"", f"\n touch {canary}\n", f"&& touch {canary}"]
    kwargs = {f"k{i}": v for i, v in enumerate(values)}
    t = _task()
    t.run_command("printf '%s\\n'", kwargs=kwargs)
    cmd = t.steps[0].command
    try:
        out = _bash(cmd, tmp_path)
        assert not canary.exists(), "a kwargs value was executed by the shell"
    finally:
        canary.unlink(missing_ok=True)
    assert out == "".join(f"--k{i}={v}\n" for i, v in enumerate(values))
    assert list(tmp_path.iterdir()) == []


def test_run_command_custom_kwformat(tmp_path: Path) -> None:
    t = _task()
    t.run_command("printf '%s\\n'", kwargs={"config": "a b.yaml", "lr": 0.001, "x": "$(id)"},
                  kwformat="--{k} {v}")
    assert t.steps[0].command == "printf '%s\\n' --config 'a b.yaml' --lr 0.001 --x '$(id)'"
    assert _bash(t.steps[0].command, tmp_path) == "--config\na b.yaml\n--lr\n0.001\n--x\n$(id)\n"


def test_run_command_default_kwformat_matches_readme() -> None:
    t = _task()
    t.run_command("python train.py", kwargs={"config": "config.yaml", "output": "/data/output",
                                             "lr": 0.001})
    assert t.steps == [RunCommand("python train.py --config=config.yaml "
                                  "--output=/data/output --lr=0.001")]


def test_recorded_command_step_is_an_ordinary_run_command() -> None:
    """The builder makes its steps without the dataclass's __init__: nothing may tell."""
    t = _task()
    t.run_command("python a.py", kwargs={"x": 1})
    t.run_command("python a.py", kwargs={"x": 1})  # the key is checked once, the step is alike
    made = RunCommand("python a.py --x=1")
    assert t.steps == [made, made] and hash(t.steps[0]) == hash(made)
    assert step_to_dict(t.steps[0]) == step_to_dict(made) == {"command": "python a.py --x=1",
                                                              "kind": "run_command"}
    assert list(vars(t.steps[0])) == list(vars(made))
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.steps[0].command = "rm -rf x"  # type: ignore[misc]


@pytest.mark.parametrize("kwformat", ["--{key}={v}", "--{0}", "--{k", "--{k}={v!z}"])
def test_bad_kwformat_rejected(kwformat: str) -> None:
    with pytest.raises(DefinitionError, match=r"kwformat .* is invalid.*use \{k\} and \{v\}"):
        _task().run_command("cmd", kwargs={"a": 1}, kwformat=kwformat)


def test_nul_in_values_or_command_rejected() -> None:
    t = _task()
    with pytest.raises(DefinitionError, match=r"value for 'a' contains a NUL byte"):
        t.run_command("cmd", kwargs={"a": "x\x00y"})
    with pytest.raises(DefinitionError, match="without NUL bytes"):
        t.run_command("cmd\x00")
    with pytest.raises(DefinitionError, match="non-empty command"):
        t.run_command("   ")
    assert t.steps == []


@pytest.mark.parametrize("key", ["a b", "-rf", "a;b", "$(id)", "", 5])
def test_bad_kwargs_keys_rejected(key: Any) -> None:
    with pytest.raises(DefinitionError, match="must be a plain name"):
        _task().run_command("cmd", kwargs={key: 1})


def test_kwargs_key_with_trailing_newline_rejected() -> None:
    with pytest.raises(DefinitionError, match="must be a plain name"):
        _task().run_command("cmd", kwargs={"a\n": "touch"}, kwformat="{k} {v}")


# -- storage --------------------------------------------------------------------------------
def test_upload_and_download_steps_recorded() -> None:
    t = _task()
    t.upload("model", "s3://bucket/m")
    t.download("file:///tmp/data", "data")
    t.upload_to_gs("/local/path/model", "gs://bucket/models/my-model")
    t.download_from_gs("gs://bucket/data/dataset.tar", "dataset.tar")
    assert t.steps == [
        Upload(f"{DIR}/model", "s3://bucket/m"),
        Download("file:///tmp/data", f"{DIR}/data"),
        Upload("/local/path/model", "gs://bucket/models/my-model"),
        Download("gs://bucket/data/dataset.tar", f"{DIR}/dataset.tar"),
    ]


@pytest.mark.parametrize("url", ["bucket/path", "", "gs://b/x\ny", "gs://b/\x00", None])
def test_bad_urls_rejected(url: Any) -> None:
    t = _task()
    with pytest.raises(DefinitionError, match="is not a storage URL"):
        t.upload("x", url)
    with pytest.raises(DefinitionError, match="is not a storage URL"):
        t.download(url, "x")
    assert t.steps == []


@pytest.mark.parametrize("url", ["s3://bucket/x", "bucket/x", "gs:/bucket", None])
def test_gs_helpers_need_gs_urls(url: Any) -> None:
    t = _task()
    with pytest.raises(DefinitionError, match=r"is not a gs:// URL"):
        t.upload_to_gs("x", url)
    with pytest.raises(DefinitionError, match=r"is not a gs:// URL"):
        t.download_from_gs(url, "x")


def test_steps_round_trip_as_dicts() -> None:
    t = _task()
    t.create_file("a", b"\x00")
    t.run_command("echo", kwargs={"x": "y z"})
    t.upload("a", "gs://b/a")
    t.download("gs://b/a", "b")
    dicts = [step_to_dict(s) for s in t.steps]
    assert [d["kind"] for d in dicts] == ["create_file", "run_command", "upload", "download"]
    assert [step_from_dict(d) for d in dicts] == t.steps
    assert t.steps[1].describe() == "run `echo --x='y z'`"
