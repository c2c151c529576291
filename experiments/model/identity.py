"""Canonical encoding of artifacts: a stable id and a safe, readable ``relpath``.

The encoding depends only on the class's qualified name and the *values* of the fields whose
canonical encoding differs from their default's (so adding a field with a default does not rename
old results). Values, not Python types: a NumPy scalar or array and the plain Python value it
equals encode the same. It never uses Python's ``hash()``, so it is the same in every process,
machine and Python version. Every value is checked here, while planning, for what the JSON specs
and the file system need, so no launch can fail half-way through on a value.
See docs/concepts/identity.md for the accepted types and what each becomes.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import DefinitionError

_sha256 = hashlib.sha256
_json_str: Callable[[str], str] = json.encoder.encode_basestring_ascii

_SAFE = re.compile(r"[^A-Za-z0-9._+=-]")
_MAX_READABLE = 120  # bytes of the readable k=v prefix; the hash keeps it unique
_HASH_LEN = 12
_MAX_COMPONENT = 255
MAX_DEPTH = 32  # containers nested inside one value; deeper (or self-holding) values are refused
# NumPy dtype kinds with an exact Python equivalent: bool, int, uint, float, str, object (whose
# items are then checked one by one). Complex, bytes, datetimes and records are refused.
_NUMPY_KINDS = frozenset("biufUO")
_TYPES_HINT = ("use a float, int, str, bool, None, enum, tuple, list, dict (str keys), another "
               "Artifact, or a NumPy scalar or array of those")


def _is_artifact(value: Any) -> bool:
    return getattr(type(value), "__experiments_artifact__", False) is True


def to_plain(value: Any) -> Any:
    """The exact plain-Python equivalent of a NumPy scalar or array; any other value unchanged.

    NumPy is imported only when the value's type comes from it, so it stays optional.
    """
    module = type(value).__module__
    if module != "numpy" and not module.startswith("numpy."):
        return value
    import numpy as np

    if type(value) is not np.ndarray and not isinstance(value, np.generic):
        return value  # matrix, masked array, dtype, ...: refused by type name
    if value.dtype.kind not in _NUMPY_KINDS:
        return value
    return value.tolist()  # a float128 stays a NumPy value here, and is refused


def _plain_float(value: float) -> float:
    """A plain float, with -0.0 as 0.0 (they compare equal; no one means them differently)."""
    return 0.0 if value == 0 else float(value)


def _check_text(text: str, where: str, what: str) -> None:
    """Refuse a string holding a lone surrogate: it cannot be written as UTF-8 (specs, files)."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DefinitionError(
            f"{where}: the {what} {text!r:.80} holds a lone surrogate "
            f"({text[exc.start]!r} at position {exc.start}; os.listdir and sys.argv give these "
            "for names that are not valid UTF-8), which cannot be written to a spec or file; "
            "decode the name yourself, e.g. os.fsencode(name).decode('utf-8', 'replace')"
        ) from None


def encode_value(value: Any, where: str) -> str:
    """Canonical text of one parameter value; raises DefinitionError naming ``where``."""
    return _encode(value, where, 0)


def _encode(value: Any, where: str, depth: int) -> str:
    exact = _EXACT.get(type(value))
    if exact is not None:  # the common plain types, without the generic checks below
        return exact(value, where)
    if _is_artifact(value):
        return value._experiments_key()  # type: ignore[no-any-return]
    value = to_plain(value)
    if value is None or value is True or value is False:
        return _encode_const(value, where)
    if isinstance(value, enum.Enum):
        text = f"{type(value).__qualname__}.{value.name}"
        _check_text(text, where, "enum name")
        return f"enum({text})"
    if isinstance(value, int):
        return _encode_int(value, where)
    if isinstance(value, float):
        return _encode_float(value, where)
    if isinstance(value, str):
        return _encode_str(value, where)
    if isinstance(value, (tuple, list, dict)):
        return _encode_container(value, where, depth)
    raise _unsupported(value, where)


def _encode_const(value: bool | None, where: str) -> str:
    return "null" if value is None else ("true" if value else "false")


def _encode_float(value: float, where: str) -> str:
    value = _plain_float(value)
    if math.isnan(value) or math.isinf(value):
        return f"float({value!r})"  # unquoted: no string can encode the same
    return repr(value)


def _encode_str(value: str, where: str) -> str:
    _check_text(value, where, "string")
    return _json_str(value)  # exactly json.dumps(value, ensure_ascii=True), without its calls


def _encode_int(value: int, where: str) -> str:
    try:
        return str(int(value))
    except ValueError:  # more digits than sys.get_int_max_str_digits(): JSON cannot hold it
        raise DefinitionError(
            f"{where}: an int of {value.bit_length()} bits is too long to write as text; "
            "pass it as a str"
        ) from None


_EXACT: dict[type, Callable[[Any, str], str]] = {
    str: _encode_str, int: _encode_int, float: _encode_float, bool: _encode_const,
    type(None): _encode_const,
}


def _encode_container(value: tuple[Any, ...] | list[Any] | dict[Any, Any], where: str,
                      depth: int) -> str:
    if depth >= MAX_DEPTH:
        raise DefinitionError(
            f"{where[:60]}...: the value is nested more than {MAX_DEPTH} containers deep (or holds "
            "itself); flatten it, or keep the deep structure in a file and pass its path"
        )
    if not isinstance(value, dict):
        return "[" + ",".join(_encode(v, f"{where}[{i}]", depth + 1)
                              for i, v in enumerate(value)) + "]"
    for k in value:
        if not isinstance(k, str):
            raise DefinitionError(
                f"{where}: dict keys must be strings, got {type(k).__name__} {k!r}; "
                "convert the keys to str"
            )
        _check_text(k, where, "dict key")
    return "{" + ",".join(f"{json.dumps(k)}:{_encode(value[k], f'{where}[{k!r}]', depth + 1)}"
                          for k in sorted(value)) + "}"


def _unsupported(value: Any, where: str) -> DefinitionError:
    hint = _TYPES_HINT
    if type(value).__module__.split(".")[0] == "numpy":
        hint = ("this NumPy type has no exact Python equivalent; convert it yourself if a plain "
                "value is what you mean (e.g. float(x), np.asarray(x, dtype=float)), or "
                + _TYPES_HINT)
    return DefinitionError(
        f"{where} has a value of type {type(value).__name__} ({value!r:.60}), which cannot be "
        f"part of an artifact's identity; {hint}"
    )


_NO_DEFAULT = object()
_field_cache: dict[type, tuple[tuple[str, Any, Any], ...]] = {}
_spec_cache: dict[type, tuple[tuple[str, Any, str | None, str], ...]] = {}
_uncompared_cache: dict[type, tuple[str, ...]] = {}


def field_info(cls: type) -> tuple[tuple[str, Any, Any], ...]:
    """(name, default, default_factory) of the compared fields of ``cls``, cached per class."""
    info = _field_cache.get(cls)
    if info is None:
        info = tuple(
            (
                f.name,
                _NO_DEFAULT if f.default is dataclasses.MISSING else f.default,
                None if f.default_factory is dataclasses.MISSING else f.default_factory,
            )
            for f in dataclasses.fields(cls)
            if f.compare
        )
        _field_cache[cls] = info
    return info


def field_names(cls: type) -> tuple[str, ...]:
    """The names of the compared fields of ``cls``, cached per class."""
    names = _names_cache.get(cls)
    if names is None:
        names = _names_cache[cls] = tuple(name for name, _, _ in field_info(cls))
    return names


_names_cache: dict[type, tuple[str, ...]] = {}


def _field_specs(cls: type) -> tuple[tuple[str, Any, str | None, str], ...]:
    """(name, default, canonical text of the default or None, where) per compared field."""
    specs = _spec_cache.get(cls)
    if specs is None:
        specs = tuple((name, default, _default_key(cls, name, default, factory),
                       f"{cls.__qualname__}.{name}")
                      for name, default, factory in field_info(cls))
        _spec_cache[cls] = specs
    return specs


def _default_key(cls: type, name: str, default: Any, factory: Any) -> str | None:
    if default is _NO_DEFAULT and factory is None:
        return None
    value = factory() if factory is not None else default
    return _encode(value, f"{cls.__qualname__}.{name} (its default)", 0)


def identity_fields(obj: Any) -> list[tuple[str, Any]]:
    """The (name, value) pairs that define an artifact: fields whose value is not the default."""
    return [(name, getattr(obj, name)) for name in identify(obj)[1]]


def _check_uncompared(obj: Any) -> None:
    """Fields left out of the identity (``compare=False``) are still written to the specs."""
    cls = type(obj)
    names = _uncompared_cache.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls) if not f.compare)
        _uncompared_cache[cls] = names
    for name in names:
        encode_value(getattr(obj, name), f"{cls.__qualname__}.{name}")


def identify(obj: Any) -> tuple[str, tuple[str, ...]]:
    """The canonical key ``QualName{field=value,...}`` and the names of the fields in it.

    Only fields whose encoding differs from their default's are in it. Comparing encodings (not
    ``==``) means a value equals the default exactly when it would give the same identity
    without one: ``-0.0`` is ``0.0``, but ``(True,)`` is not ``(1,)``. Every value is checked
    here (types, depth, text), also defaults and ``compare=False`` fields. (One plain loop, no
    comprehensions: this runs once per artifact of a million-artifact grid.)
    """
    tp = type(obj)
    body = ""
    names: tuple[str, ...] = ()
    for name, default, default_key, where in _spec_cache.get(tp) or _field_specs(tp):
        value = getattr(obj, name)
        if value is default:  # the default object itself: its encoding is known (and checked)
            continue
        exact = _EXACT.get(type(value))  # the common plain types, one call fewer
        text = exact(value, where) if exact is not None else _encode(value, where, 0)
        if text != default_key:
            body = f"{body},{name}={text}" if body else f"{name}={text}"
            names += (name,)
    key = f"{tp.__qualname__}{{{body}}}"
    if not key.isascii():
        _check_text(key, ascii(tp.__qualname__), "class or field name")
    uncompared = _uncompared_cache.get(tp)
    if uncompared is None or uncompared:
        _check_uncompared(obj)
    return key, names


def canonical_key(obj: Any) -> str:
    """The canonical encoding of an artifact: ``QualName{field=value,...}``; checks every value."""
    return identify(obj)[0]


def digest(key: str) -> str:
    """A short, stable hex digest of a canonical key."""
    return _sha256(key.encode("utf-8")).hexdigest()[:_HASH_LEN]


def _readable(value: Any) -> str:
    if type(value) is str or type(value) is int:
        return str(value)
    if type(value) is float:
        return repr(_plain_float(value))
    value = to_plain(value)
    if _is_artifact(value):
        return f"{type(value).__name__}-{value.artifact_id}"
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(_plain_float(value))
    if isinstance(value, (tuple, list)):
        return "+".join(_readable(v) for v in value)
    if isinstance(value, dict):
        return "+".join(f"{k}-{_readable(v)}" for k, v in sorted(value.items()))
    return str.__str__(value)


def default_relpath(obj: Any, names: Sequence[str] | None = None) -> str:
    """``ClassName/k=v,k=v-<hash>``: readable, unique (the hash), and safe as a path.

    ``names`` are the fields in the identity, as ``identify`` gave them (found again if None).
    """
    artifact_id = obj.artifact_id  # first: it checks every value (depth, types, text)
    if names is None:
        names = identify(obj)[1]
    cls = _class_part(type(obj))
    if not names:
        return f"{cls}/{artifact_id}"
    parts = []
    for n in names:
        value = getattr(obj, n)
        tp = type(value)
        if tp is int:  # an int's digits and sign are safe as they are
            text = str(value)
        elif tp is str:
            text = _SAFE.sub("_", value)
        elif getattr(tp, "__experiments_artifact__", False) is True:  # a hex id is safe too
            text = f"{_class_part(tp)}-{value.artifact_id}"
        else:
            text = _SAFE.sub("_", _readable(value))
        parts.append(f"{n}={text}")
    readable = ",".join(parts)
    if len(readable) > _MAX_READABLE or not readable.isascii():
        readable = readable.encode("ascii", "replace")[:_MAX_READABLE].decode("ascii")
    return f"{cls}/{readable}-{artifact_id}"


def _class_part(tp: type) -> str:
    """The class's name, made safe for a path (cached per class)."""
    part = _CLASS_PART.get(tp)
    if part is None:
        part = _CLASS_PART[tp] = _SAFE.sub("_", tp.__name__)
    return part


_CLASS_PART: dict[type, str] = {}


def check_relpath(relpath: Any, where: str) -> str:
    """Validate a relpath (default or overridden): relative, no '..', no NUL, short components."""
    hint = "return a relative path of plain names from your relpath override"
    if not isinstance(relpath, str) or not relpath:
        raise DefinitionError(f"{where}: relpath must be a non-empty str, got {relpath!r}; {hint}")
    if "\x00" in relpath or "\\" in relpath or "\n" in relpath or relpath.startswith("/"):
        raise DefinitionError(f"{where}: relpath {relpath!r} is absolute or has a NUL, backslash "
                              f"or newline; {hint}")
    _check_text(relpath, where, "relpath")
    for comp in relpath.split("/"):
        if comp in ("", ".", ".."):
            raise DefinitionError(f"{where}: relpath {relpath!r} has an empty, '.' or '..' "
                                  f"component; {hint}")
        if len(comp.encode("utf-8")) > _MAX_COMPONENT:
            raise DefinitionError(f"{where}: relpath component {comp[:40]!r}... is longer than "
                                  f"{_MAX_COMPONENT} bytes; {hint}")
    return relpath


def encode_params(obj: Any) -> dict[str, Any]:
    """Plain JSON of all fields (for the specs and the metadata file a person reads).

    The artifact's canonical key is computed first (it is cached), so every value has passed
    the planning checks and the result always survives ``json.dumps(..., ensure_ascii=False)``.
    """
    obj._experiments_key()
    names = _all_fields.get(type(obj))
    if names is None:
        names = _all_fields[type(obj)] = tuple(f.name for f in dataclasses.fields(obj))
    out = {}
    for name in names:
        value = getattr(obj, name)
        out[name] = value if type(value) in _AS_IS else _jsonable(value)
    return out


_all_fields: dict[type, tuple[str, ...]] = {}
_AS_IS = frozenset({str, int, bool, type(None)})  # exact types only: subclasses go the long way


def _jsonable(value: Any) -> Any:
    """The JSON form of a checked value: the same for a NumPy value as for its plain one."""
    if type(value) in _AS_IS:  # the common plain values are their own JSON form
        return value
    value = to_plain(value)
    if value is None or isinstance(value, bool):
        return value
    if _is_artifact(value):
        return {"artifact": type(value).__qualname__, "relpath": value.relpath}
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        value = _plain_float(value)
        return repr(value) if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str.__str__(value)  # a str: the only type left once the key check passed
