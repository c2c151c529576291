"""Artifact identity: canonical encoding, stable ids, safe relpaths, class checks."""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from experiments import Artifact, ArtifactSet, DefinitionError, Task
from experiments.model.identity import MAX_DEPTH, check_relpath, encode_params, encode_value
from experiments.worker import specs
from tests.support.hostile import HOSTILE

# Executed here and in fresh interpreters: the same class must give the same relpath anywhere.
PINNED_SRC = '''
import enum
from dataclasses import dataclass
from experiments.model.artifact import Artifact

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


# -- values, not Python types (issue 10) ----------------------------------------------------
@dataclass(frozen=True)
class Lam(Artifact):
    lam: float
    n: int = 1

    def construct(self, builder: Task) -> None:
        pass


def _ids(arts: Any) -> list[tuple[str, str, str]]:
    return [(a.relpath, a.artifact_id, json.dumps(encode_params(a))) for a in arts]


@pytest.mark.parametrize("numpy_grid", [
    {"lam": np.logspace(-3, 0, 4), "n": np.arange(1, 4)},        # arrays are swept like lists
    {"lam": list(np.logspace(-3, 0, 4)), "n": list(np.arange(1, 4))},  # lists of NumPy scalars
    {"lam": [np.float32(v) for v in (1e-3, 1e-2, 1e-1, 1.0)] and list(np.logspace(-3, 0, 4)),
     "n": [np.int8(1), np.uint16(2), np.int64(3)]},
])
def test_numpy_grid_gives_the_literal_grids_relpaths_and_ids(numpy_grid: dict[str, Any]) -> None:
    literal = ArtifactSet.from_product(Lam, {"lam": [0.001, 0.01, 0.1, 1.0], "n": [1, 2, 3]})
    grid = ArtifactSet.from_product(Lam, numpy_grid)
    assert _ids(grid) == _ids(literal)
    assert "Lam/lam=0.001,n=2-" in grid[1].relpath


@pytest.mark.parametrize("numpy_value,plain", [
    (np.float64(0.1), 0.1), (np.float32(0.5), 0.5), (np.float16(0.25), 0.25),
    (np.float32(0.1), 0.10000000149011612),  # its exact value, not the literal it came from
    (np.int64(3), 3), (np.int8(-2), -2), (np.uint64(2**64 - 1), 2**64 - 1),
    (np.bool_(True), True), (np.bool_(False), False), (np.str_("a b/é"), "a b/é"),
    (np.float64("nan"), float("nan")), (np.float64("-inf"), float("-inf")),
    (np.array(2.5), 2.5), (np.array([1, 2, 3]), [1, 2, 3]), (np.array([[1, 2], [3, 4]]),
                                                          [[1, 2], [3, 4]]),
    (np.array([True, False]), [True, False]), (np.array(["x", "yz"]), ["x", "yz"]),
    (np.array([1, "a", None], dtype=object), [1, "a", None]), (np.zeros(0), []),
    ({"k": np.float64(1.5), "l": [np.int32(7)]}, {"k": 1.5, "l": [7]}),
])
def test_numpy_value_has_the_identity_of_the_plain_value(numpy_value: Any, plain: Any) -> None:
    ours, theirs = Anything(value=numpy_value), Anything(value=plain)
    assert ours.relpath == theirs.relpath
    assert ours.artifact_id == theirs.artifact_id
    assert encode_value(numpy_value, "X.f") == encode_value(plain, "X.f")
    assert json.dumps(encode_params(ours)) == json.dumps(encode_params(theirs))
    assert "np." not in ours.relpath and "array" not in ours.relpath


def test_numpy_arrays_are_tuple_like_values() -> None:
    as_tuple, as_list = Anything(value=(0.5, 1.0)), Anything(value=[0.5, 1.0])
    arr = Anything(value=np.array([0.5, 1.0]))
    assert arr.relpath == as_tuple.relpath == as_list.relpath == "Anything/value=0.5+1.0-" + (
        as_tuple.artifact_id)
    assert encode_params(arr) == {"value": [0.5, 1.0]}
    assert Combo(single=Model(lr=1.0), many=np.array([1, 2])).relpath == Combo(
        single=Model(lr=1.0), many=(1, 2)).relpath
    # In a grid, an array inside a list is one tuple-like value.
    fixed = ArtifactSet.from_product(Anything, {"value": [np.array([1, 2])]})
    assert [a.relpath for a in fixed] == [Anything(value=(1, 2)).relpath]


def test_numpy_array_axis_is_deduplicated_like_a_list() -> None:
    grid = ArtifactSet.from_product(Lam, {"lam": np.array([0.1, 0.1, 0.2])})
    assert [a.lam for a in grid] == [0.1, 0.2]
    assert [type(a.lam) for a in grid] == [float, float]


@pytest.mark.parametrize("value,type_name", [
    (np.complex128(1 + 2j), "complex"), (np.array([1 + 2j]), "ndarray"),
    (np.datetime64("2020-01-01"), "datetime64"), (np.array(["2020-01-01"], dtype="M8[ns]"),
                                                  "ndarray"),
    (np.longdouble(1) if np.finfo(np.longdouble).bits > 64 else np.clongdouble(1), None),
    (np.bytes_(b"x"), "bytes"), (np.ma.array([1, 2], mask=[0, 1]), "MaskedArray"),
    (np.array([{1}], dtype=object), "set"),
])
def test_numpy_values_without_exact_python_equivalent_are_refused(value: Any,
                                                                  type_name: str | None) -> None:
    with pytest.raises(DefinitionError, match=r"^Anything\.value(\[0\])? has a value of type"
                       ) as info:
        _ = Anything(value=value).artifact_id
    if type_name is not None:
        assert f"of type {type_name}" in str(info.value)


def test_numpy_is_not_imported_for_plain_values() -> None:
    code = (PINNED_SRC
            + "\nimport sys, json\nfrom experiments.model.identity import encode_params\n"
            "json.dumps(encode_params(ART)); print(ART.relpath)\nprint('numpy' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True).stdout.splitlines()
    assert out == [PINNED_RELPATH, "False"]


# -- one rule for equal values, with or without a default ------------------------------------
@dataclass(frozen=True)
class WithDefaults(Artifact):
    x: float = 0.0
    t: tuple = (1,)
    d: dict = field(default_factory=lambda: {"a": [1]})
    z: float = float("nan")

    def construct(self, builder: Task) -> None:
        pass


@dataclass(frozen=True)
class NoDefaults(Artifact):
    x: Any
    t: Any
    d: Any
    z: Any

    def construct(self, builder: Task) -> None:
        pass


_DEFAULTS = {"x": 0.0, "t": (1,), "d": {"a": [1]}, "z": float("nan")}


@pytest.mark.parametrize("name,value,same", [
    ("x", -0.0, True), ("x", np.float64(0.0), True), ("x", np.float64(-0.0), True),
    ("x", 0, False), ("x", False, False), ("x", 1e-300, False),
    ("t", (True,), False), ("t", [1], True), ("t", np.array([1]), True),
    ("t", np.array([True]), False), ("t", (1.0,), False), ("t", (np.int64(1),), True),
    ("d", {"a": [True]}, False), ("d", {"a": (1,)}, True), ("d", {"a": [np.uint8(1)]}, True),
    ("z", float("nan"), True), ("z", np.float32("nan"), True), ("z", float("inf"), False),
])
def test_a_value_is_the_default_exactly_when_it_would_equal_it_without_one(
        name: str, value: Any, same: bool) -> None:
    with_default = WithDefaults(**{name: value})
    assert (with_default.artifact_id == WithDefaults().artifact_id) is same
    assert (with_default.relpath == WithDefaults().relpath) is same
    explicit, plain = NoDefaults(**{**_DEFAULTS, name: value}), NoDefaults(**_DEFAULTS)
    assert (explicit.artifact_id == plain.artifact_id) is same


def test_minus_zero_is_zero_and_true_is_never_one() -> None:
    assert encode_value(-0.0, "X.f") == encode_value(0.0, "X.f") == "0.0"
    assert Anything(value=-0.0).relpath == Anything(value=0.0).relpath
    assert encode_params(Anything(value=[-0.0])) == {"value": [0.0]}
    assert "-0.0" not in json.dumps(encode_params(Anything(value={"k": -0.0})))
    for true, one in [(True, 1), ((True,), (1,)), ([0, True], [0, 1]), ({"a": True}, {"a": 1})]:
        assert Anything(value=true).artifact_id != Anything(value=one).artifact_id
    assert (Anything(value=np.array([True])).artifact_id
            == Anything(value=[True]).artifact_id != Anything(value=[1]).artifact_id)


# -- every value checked while planning -------------------------------------------------------
_LISTDIR_NAME = os.fsdecode(b"caf\xe9.txt")  # what os.listdir gives for a Latin-1 file name


@pytest.mark.parametrize("value,where,what", [
    (_LISTDIR_NAME, "Anything.value", "string"),
    (["ok", "x\udc80"], r"Anything.value\[1\]", "string"),
    ({"k\udcff": 1}, "Anything.value", "dict key"),
    ({"k": ("a", "\ud800")}, r"Anything.value\['k'\]\[1\]", "string"),
    (np.array(["a", "\udc80"]), r"Anything.value\[1\]", "string"),
    (enum.Enum("Odd", ["x\udc80"])["x\udc80"], "Anything.value", "enum name"),
])
def test_lone_surrogates_are_refused_naming_the_field(value: Any, where: str, what: str) -> None:
    with pytest.raises(DefinitionError, match=rf"^{where}: the {what} .* lone surrogate .*"
                                              r"os\.fsencode\(name\)\.decode"):
        _ = Anything(value=value).relpath


def test_relpath_override_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(DefinitionError, match=r"^MyArt: the relpath .* lone surrogate"):
        check_relpath(f"Data/{_LISTDIR_NAME}", "MyArt")


def _nested(depth: int, leaf: Any = 1) -> Any:
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"k": leaf}
    return leaf


def test_values_deeper_than_the_limit_are_refused_naming_the_field() -> None:
    assert MAX_DEPTH == 32
    _ = Anything(value=_nested(MAX_DEPTH)).relpath  # exactly at the limit: fine
    with pytest.raises(DefinitionError, match=r"^Anything\.value\['k'\]\[0\].*nested more than "
                                              r"32 containers deep.*flatten it"):
        _ = Anything(value=_nested(MAX_DEPTH + 1)).relpath


def test_a_value_holding_itself_is_refused_not_a_recursion_error() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    looped: dict[str, Any] = {}
    looped["me"] = looped
    for value in (loop, looped, (0, [loop])):
        with pytest.raises(DefinitionError, match=r"^Anything\.value.*holds itself"):
            _ = Anything(value=value).artifact_id


def test_huge_int_is_refused_with_a_hint() -> None:
    with pytest.raises(DefinitionError, match=r"^Anything\.value: an int of .* bits.*as a str"):
        _ = Anything(value=10**5000).artifact_id


def test_defaults_and_uncompared_fields_are_checked_too() -> None:
    @dataclass(frozen=True)
    class BadDefault(Artifact):
        tags: frozenset = frozenset()

    @dataclass(frozen=True)
    class Uncompared(Artifact):
        x: int
        note: Any = field(default=None, compare=False)

    with pytest.raises(DefinitionError, match=r"\.BadDefault\.tags \(its default\) has a value "
                                              r"of type frozenset"):
        _ = BadDefault().artifact_id
    assert Uncompared(x=1, note="a").artifact_id == Uncompared(x=1).artifact_id
    with pytest.raises(DefinitionError, match=r"\.Uncompared\.note: the string .* lone surr"):
        _ = Uncompared(x=1, note=_LISTDIR_NAME).artifact_id


class Odd(int):
    def __str__(self) -> str:
        return "odd"


class Shout(str):
    def __str__(self) -> str:
        return "SHOUT"


class Weird(float):
    def __repr__(self) -> str:
        return "weird"


class Level(enum.IntEnum):
    LOW = 1


def _nasty_values() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    point = collections.namedtuple("point", "x y")
    return [
        *HOSTILE, _LISTDIR_NAME, "\udc80", "\ud83d", ["ok", "\udc80"], {"\udc80": 1},
        "\x00", "\u2028\u2029", "🚀" * 100, 10**5000, -(2**200), float("nan"), float("inf"),
        -0.0, np.float32("inf"), np.float64("nan"), np.int64(-(2**63)), np.uint64(2**64 - 1),
        _nested(MAX_DEPTH), _nested(MAX_DEPTH + 1), _nested(500), loop, {1, 2}, b"x", 1 + 2j,
        np.complex64(1), np.datetime64("2020-01-01"), np.longdouble(1),
        np.array(["a", "\udc80"]), np.array([{1}], dtype=object), np.array([[1.5], [-0.0]]),
        np.ma.array([1]), Odd(3), Shout("s"), Weird(0.5), Level.LOW, point(1, "\udc80"),
        point(1, 2), collections.OrderedDict(b=1, a=2), enum.Enum("Odd", ["x\udc80"])["x\udc80"],
        Model(lr=np.float64(-0.0)), [Model(lr=0.1), {"m": Model(lr=np.float32(2))}], object(),
    ]


@pytest.mark.parametrize("value", _nasty_values(), ids=lambda v: f"{type(v).__name__}")
def test_what_passes_the_key_check_is_always_written_as_json(value: Any, tmp_path: Any) -> None:
    art = Combo(single=Model(lr=1.0), many=(value,), named={"k": value})
    try:
        art._experiments_key()
    except DefinitionError as exc:
        assert str(exc).startswith("Combo.many[0]")
        return
    params = encode_params(art)
    specs.write_spec(str(tmp_path), specs.SpecHeader("p", "s", "j", "/a", "/c"),
                     [{"params": params, "relpath": art.relpath}])
    assert specs.read_task(str(tmp_path), 0)["params"] == json.loads(json.dumps(params))
    text = json.dumps(params, ensure_ascii=False)
    assert "NaN" not in text and "Infinity" not in text and "-0.0" not in text
    assert check_relpath(art.relpath, "Combo") == art.relpath


def test_keys_of_unkeyed_dependencies_one_or_more_levels_down_are_the_canonical_ones() -> None:
    """A dependency whose own dependencies have keys is keyed on the spot; a deeper one goes
    the general way: either way every key is the canonical encoding, deepest first."""
    leaf = Model(lr=0.5)
    mid = Anything(value=leaf)
    top = Anything(value=[mid, Model(lr=0.25)])  # mid two levels deep, a plain dependency too
    assert top._experiments_key() == (
        "Anything{value=[Anything{value=Model{lr=0.5}},Model{lr=0.25}]}")
    assert mid._experiments_key() == "Anything{value=Model{lr=0.5}}"
    assert leaf._experiments_key() == "Model{lr=0.5}"
    fresh = Anything(value=[Anything(value=Model(lr=0.5)), Model(lr=0.25)])
    assert fresh._experiments_key() == top._experiments_key()
    assert fresh.artifact_id == top.artifact_id and fresh.relpath == top.relpath


@pytest.mark.parametrize(("value", "written"), [
    ("s", "s"), (7, 7), (True, True), (None, None), (Shout("s"), "s"), (Level.LOW, "Level.LOW"),
    (np.int64(3), 3), (-0.0, 0.0)])
def test_a_field_is_written_as_its_plain_json_whatever_its_type(value: Any, written: Any) -> None:
    """Plain str/int/bool/None fields are written as they are; subclasses of them (a str whose
    ``__str__`` lies, an IntEnum) and NumPy values still go through the full conversion."""
    params = encode_params(Anything(value=value))
    assert params == {"value": written}
    assert type(params["value"]) is type(written)
