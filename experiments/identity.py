"""Canonical encoding of artifacts: a stable id and a safe, readable ``relpath``.

The encoding depends only on the class's qualified name and the values of the fields that differ
from their defaults (so adding a field with a default does not rename old results). It never uses
Python's ``hash()``, so it is the same in every process, machine and Python version.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import re
from typing import Any

from .errors import DefinitionError

_SAFE = re.compile(r"[^A-Za-z0-9._+=-]")
_MAX_READABLE = 120  # bytes of the readable k=v prefix; the hash keeps it unique
_HASH_LEN = 12
_MAX_COMPONENT = 255


def _is_artifact(value: Any) -> bool:
    return getattr(type(value), "__experiments_artifact__", False) is True


def encode_value(value: Any, where: str) -> str:
    """Canonical text of one parameter value; raises DefinitionError naming ``where``."""
    if value is None or value is True or value is False:
        return "null" if value is None else ("true" if value else "false")
    if isinstance(value, enum.Enum):
        return f"enum({type(value).__qualname__}.{value.name})"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return f"float({value!r})"  # unquoted: no string can encode the same
        return repr(float(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)
    if _is_artifact(value):
        return value._experiments_key()
    if isinstance(value, (tuple, list)):
        items = ",".join(encode_value(v, f"{where}[{i}]") for i, v in enumerate(value))
        return f"[{items}]"
    if isinstance(value, dict):
        parts = []
        for k in value:
            if not isinstance(k, str):
                raise DefinitionError(
                    f"{where}: dict keys must be strings, got {type(k).__name__} {k!r}; "
                    "convert the keys to str"
                )
        for k in sorted(value):
            parts.append(f"{json.dumps(k)}:{encode_value(value[k], f'{where}[{k!r}]')}")
        return "{" + ",".join(parts) + "}"
    raise DefinitionError(
        f"{where} has a value of type {type(value).__name__} ({value!r:.60}), which cannot be part "
        "of an artifact's identity; use a float, int, str, bool, None, enum, tuple, list, dict "
        "or another Artifact"
    )


_NO_DEFAULT = object()
_field_cache: dict[type, tuple[tuple[str, Any, Any], ...]] = {}


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


def identity_fields(obj: Any) -> list[tuple[str, Any]]:
    """The (name, value) pairs that define an artifact: fields whose value is not the default."""
    out = []
    for name, default, factory in field_info(type(obj)):
        value = getattr(obj, name)
        if default is not _NO_DEFAULT and _same(value, default):
            continue
        if factory is not None and _same(value, factory()):
            continue
        out.append((name, value))
    return out


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def canonical_key(obj: Any) -> str:
    """The canonical encoding of an artifact: ``QualName{field=value,...}``."""
    cls = type(obj).__qualname__
    parts = [f"{n}={encode_value(v, f'{cls}.{n}')}" for n, v in identity_fields(obj)]
    return f"{cls}{{{','.join(parts)}}}"


def digest(key: str) -> str:
    """A short, stable hex digest of a canonical key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:_HASH_LEN]


def _readable(value: Any) -> str:
    if _is_artifact(value):
        return f"{type(value).__name__}-{value.artifact_id}"
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "+".join(_readable(v) for v in value)
    if isinstance(value, dict):
        return "+".join(f"{k}-{_readable(v)}" for k, v in sorted(value.items()))
    return str(value)


def default_relpath(obj: Any) -> str:
    """``ClassName/k=v,k=v-<hash>``: readable, unique (the hash), and safe as a path."""
    cls = _SAFE.sub("_", type(obj).__name__)
    readable = ",".join(
        f"{n}={_SAFE.sub('_', _readable(v))}" for n, v in identity_fields(obj)
    )
    readable = readable.encode("ascii", "replace")[:_MAX_READABLE].decode("ascii")
    leaf = f"{readable}-{obj.artifact_id}" if readable else obj.artifact_id
    return f"{cls}/{leaf}"


def check_relpath(relpath: Any, where: str) -> str:
    """Validate a relpath (default or overridden): relative, no '..', no NUL, short components."""
    hint = "return a relative path of plain names from your relpath override"
    if not isinstance(relpath, str) or not relpath:
        raise DefinitionError(f"{where}: relpath must be a non-empty str, got {relpath!r}; {hint}")
    if "\x00" in relpath or "\\" in relpath or "\n" in relpath or relpath.startswith("/"):
        raise DefinitionError(f"{where}: relpath {relpath!r} is absolute or has a NUL, backslash "
                              f"or newline; {hint}")
    for comp in relpath.split("/"):
        if comp in ("", ".", ".."):
            raise DefinitionError(f"{where}: relpath {relpath!r} has an empty, '.' or '..' "
                                  f"component; {hint}")
        if len(comp.encode("utf-8")) > _MAX_COMPONENT:
            raise DefinitionError(f"{where}: relpath component {comp[:40]!r}... is longer than "
                                  f"{_MAX_COMPONENT} bytes; {hint}")
    return relpath


def encode_params(obj: Any) -> dict[str, Any]:
    """A JSON-friendly view of all fields (for the metadata file a person reads)."""
    return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _jsonable(value: Any) -> Any:
    if _is_artifact(value):
        return {"artifact": type(value).__qualname__, "relpath": value.relpath}
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
