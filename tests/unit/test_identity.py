"""Artifact identity: canonical encoding, stable ids, safe relpaths, class checks."""

from __future__ import annotations

import dataclasses
import enum
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

from experiments import Artifact, DefinitionError, Task
from experiments.identity import check_relpath, encode_value

from .hostile import HOSTILE

# Executed here and in fresh interpreters: the same class must give the same relpath anywhere.
PINNED_SRC = '''
import enum
from dataclasses import dataclass
from experiments.artifact import Artifact

class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"

@dataclass(frozen=True)
class Base(Artifact):
    seed: int

@dataclass(frozen=True)
class Pinned(Artifact):
    lr: float
    epochs: int
    name: str
    flag: bool
    nothing: object
    color: Color
    shape: tuple
    opts: dict
    base: Base
    extra: int = 7

ART = Pinned(lr=1e-4, epochs=10, name="run a/b", flag=True, nothing=None, color=Color.BLUE,
             shape=(1, 2.5, "x"), opts={"b": [1, 2], "a": {"z": False}}, base=Base(seed=3))
'''
PINNED_KEY = ('Pinned{lr=0.0001,epochs=10,name="run a/b",flag=true,nothing=null,'
              'color=enum(Color.BLUE),shape=[1,2.5,"x"],opts={"a":{"z":false},"b":[1,2]},'
              'base=Base{seed=3}}')
PINNED_ID = "516ff93b0671"
PINNED_RELPATH = ("Pinned/lr=0.0001,epochs=10,name=run_a_b,flag=True,nothing=None,color=BLUE,"
                  "shape=1+2.5+x,opts=a-z-False+b-1+2,base=Base-a493ff9c-516ff93b0671")


def _pinned() -> Any:
    ns: dict[str, Any] = {"__name__": "pinned"}
    exec(compile(PINNED_SRC, "<pinned>", "exec", dont_inherit=True), ns)
    return ns["ART"]


@dataclass(frozen=True)
class Model(Artifact):
    lr: float
    epochs: int = 10

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass(frozen=True)
class Anything(Artifact):
    value: Any

    def construct(self, builder: Task) -> None:
        pass


class Color(enum.Enum):
    RED = 1
    GREEN = 2


# -- stable identity -------------------------------------------------------------------------
def test_equal_params_give_same_id_and_relpath() -> None:
    a, b = Model(lr=0.1, epochs=5), Model(lr=0.1, epochs=5)
    assert a is not b
    assert a.artifact_id == b.artifact_id
    assert a.relpath == b.relpath
    assert Model(lr=0.1, epochs=6).artifact_id != a.artifact_id
    assert Model(lr=0.2, epochs=5).relpath != a.relpath


def test_pinned_encoding_is_stable() -> None:
    art = _pinned()
    assert art._experiments_key() == PINNED_KEY
    assert art.artifact_id == PINNED_ID
    assert art.relpath == PINNED_RELPATH


@pytest.mark.parametrize("hashseed", ["0", "12345"])
def test_relpath_identical_in_subprocess_with_other_hash_seed(hashseed: str) -> None:
    code = PINNED_SRC + "\nprint(ART.relpath)\nprint(ART.artifact_id)\n"
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=30, check=True).stdout.splitlines()
    assert out == [PINNED_RELPATH, PINNED_ID]


def test_relpath_starts_with_class_name() -> None:
    art = Model(lr=0.5)
    assert art.relpath.split("/")[0] == "Model"
    assert art.relpath.endswith("-" + art.artifact_id)
    assert len(art.artifact_id) == 12
    assert all(c in "0123456789abcdef" for c in art.artifact_id)


def _model_class(with_new_field: bool) -> type:
    """Two versions of one class (same __qualname__): before and after adding a field."""
    if with_new_field:
        @dataclass(frozen=True)
        class Trainer(Artifact):
            lr: float
            warmup: int = 0
            tags: list = field(default_factory=list)
    else:
        @dataclass(frozen=True)
        class Trainer(Artifact):  # type: ignore[no-redef]
            lr: float
    return Trainer


def test_adding_a_field_with_default_keeps_old_relpath() -> None:
    old, new = _model_class(False), _model_class(True)
    assert old.__qualname__ == new.__qualname__
    assert new(lr=0.1).relpath == old(lr=0.1).relpath
    assert new(lr=0.1).artifact_id == old(lr=0.1).artifact_id
    assert new(lr=0.1, tags=[]).relpath == old(lr=0.1).relpath
    assert new(lr=0.1, warmup=5).relpath != old(lr=0.1).relpath
    assert new(lr=0.1, tags=["a"]).relpath != old(lr=0.1).relpath


def test_explicit_default_equals_omitted_default() -> None:
    assert Model(lr=0.1, epochs=10).relpath == Model(lr=0.1).relpath
    assert "epochs" not in Model(lr=0.1).relpath
    assert "epochs=11" in Model(lr=0.1, epochs=11).relpath


# -- encoding of value types ----------------------------------------------------------------
@pytest.mark.parametrize("value,expected", [
    (None, "null"), (True, "true"), (False, "false"), (0, "0"), (-42, "-42"),
    (0.1, "0.1"), (1e-5, "1e-05"), (2.0, "2.0"), ("a b", '"a b"'), ("é", '"\\u00e9"'),
    (Color.GREEN, 'enum(Color.GREEN)'), ((1, "x"), '[1,"x"]'), ([1.5, None], "[1.5,null]"),
    ({"b": 1, "a": [True]}, '{"a":[true],"b":1}'), ((), "[]"), ({}, "{}"),
])
def test_encode_value_of_supported_types(value: Any, expected: str) -> None:
    assert encode_value(value, "X.f") == expected


def test_int_float_and_bool_are_distinct_identities() -> None:
    ids = {Anything(value=v).artifact_id for v in (1, 1.0, True, "1", None, "null", [1], {"1": 1})}
    assert len(ids) == 8


def test_dict_key_order_does_not_matter() -> None:
    assert (Anything(value={"a": 1, "b": 2}).artifact_id
            == Anything(value={"b": 2, "a": 1}).artifact_id)


def test_nested_artifact_is_part_of_the_identity() -> None:
    a = Anything(value=Model(lr=0.1))
    b = Anything(value=Model(lr=0.2))
    assert a.artifact_id != b.artifact_id
    assert 'value=Model{lr=0.1}' in a._experiments_key()
    assert f"Model-{Model(lr=0.1).artifact_id}" in a.relpath


@pytest.mark.parametrize("value,type_name,where", [
    ({1, 2}, "set", "Anything.value"),
    (object(), "object", "Anything.value"),
    (b"bytes", "bytes", "Anything.value"),
    ([1, {3}], "set", "Anything.value[1]"),
    ({"k": frozenset()}, "frozenset", "Anything.value['k']"),
])
def test_unsupported_type_raises_definition_error_naming_field(value: Any, type_name: str,
                                                               where: str) -> None:
    art = Anything(value=value)
    with pytest.raises(DefinitionError) as info:
        _ = art.relpath
    assert isinstance(info.value, TypeError)
    assert str(info.value).startswith(f"{where} has a value of type {type_name}")


def test_non_string_dict_key_rejected() -> None:
    with pytest.raises(DefinitionError, match=r"Anything.value: dict keys must be strings"):
        _ = Anything(value={1: "a"}).artifact_id


def test_str_cannot_collide_with_enum_or_special_float() -> None:
    assert (Anything(value=Color.RED).artifact_id
            != Anything(value="__enum__:Color.RED").artifact_id)
    assert (Anything(value=float("inf")).artifact_id
            != Anything(value="__float__:inf").artifact_id)


# -- class checks ---------------------------------------------------------------------------
def test_non_dataclass_subclass_rejected_at_instantiation() -> None:
    class NotADataclass(Artifact):
        pass

    with pytest.raises(TypeError, match=r"NotADataclass is not a dataclass.*frozen=True"):
        NotADataclass()


def test_undecorated_subclass_of_artifact_dataclass_rejected() -> None:
    class Sub(Model):
        pass

    with pytest.raises(DefinitionError, match=r"Sub is not a dataclass"):
        Sub(lr=0.1)


def test_non_frozen_dataclass_rejected_at_instantiation() -> None:
    @dataclass
    class Mutable(Artifact):
        x: int

    with pytest.raises(TypeError, match=r"Mutable is a dataclass but not frozen"):
        Mutable(x=1)


def test_construct_is_required() -> None:
    @dataclass(frozen=True)
    class NoConstruct(Artifact):
        x: int

    art = NoConstruct(x=1)
    builder = Task(artifact_path="/a", code_path="/c", relpath=art.relpath)
    with pytest.raises(DefinitionError, match=r"NoConstruct does not define construct"):
        art.construct(builder)
    with pytest.raises(DefinitionError):
        Artifact.construct(art, builder)


def test_get_requirements_default_is_empty() -> None:
    assert Model(lr=1.0).get_requirements() == {}


def test_artifacts_are_immutable() -> None:
    art = Model(lr=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        art.lr = 2.0  # type: ignore[misc]


# -- dependencies ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Combo(Artifact):
    single: Model
    many: tuple = ()
    listed: list = field(default_factory=list)
    named: dict = field(default_factory=dict)
    label: str = "x"

    def construct(self, builder: Task) -> None:
        pass


def test_dependencies_found_in_fields_and_containers() -> None:
    m = [Model(lr=float(i)) for i in range(5)]
    combo = Combo(single=m[0], many=(m[1], "not an artifact"), listed=[[m[2]]],
                  named={"a": m[3], "b": {"deep": m[4]}})
    assert combo.dependencies() == tuple(m)
    assert Model(lr=1.0).dependencies() == ()


# -- relpath safety -------------------------------------------------------------------------
def _assert_safe(relpath: str) -> None:
    assert not relpath.startswith("/")
    assert "\x00" not in relpath and "\n" not in relpath and "\r" not in relpath
    comps = relpath.split("/")
    assert len(comps) == 2
    for comp in comps:
        assert comp not in ("", ".", "..")
        assert len(comp.encode("utf-8")) <= 255
    assert os.path.normpath(relpath) == relpath
    assert check_relpath(relpath, "test") == relpath


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_give_safe_relpaths(value: str) -> None:
    art = Anything(value=value)
    _assert_safe(art.relpath)
    assert art.relpath.startswith("Anything/value=")
    _assert_safe(Anything(value=[value, {"k": value}]).relpath)


def test_distinct_hostile_values_give_distinct_relpaths() -> None:
    relpaths = {Anything(value=v).relpath for v in HOSTILE}
    assert len(relpaths) == len(set(HOSTILE))
    # values that sanitise to the same readable text still differ by the hash
    assert Anything(value="a/b").relpath != Anything(value="a_b").relpath


@pytest.mark.parametrize("bad", [
    "", "/abs/path", "a/../b", "..", "a/..", "./a", "a//b", "a/", "a\nb", "a\x00b", "a\\b",
    "x" * 256, "é" * 128, 5, None, b"bytes",
])
def test_check_relpath_rejects_bad_overrides(bad: Any) -> None:
    with pytest.raises(DefinitionError, match=r"MyArt: relpath.*relative path"):
        check_relpath(bad, "MyArt")


@pytest.mark.parametrize("good", ["a", "A/b=1-abc", "модель/x", "x" * 255, "a/.hidden"])
def test_check_relpath_accepts_plain_relative_paths(good: str) -> None:
    assert check_relpath(good, "MyArt") == good


def test_relpath_override_is_checked() -> None:
    @dataclass(frozen=True)
    class Escaping(Artifact):
        x: int

        @property
        def relpath(self) -> str:  # type: ignore[override]
            return f"../../{self.x}"

    art = Escaping(x=1)
    with pytest.raises(DefinitionError, match=r"has an empty, '\.' or '\.\.' component"):
        check_relpath(art.relpath, type(art).__qualname__)
