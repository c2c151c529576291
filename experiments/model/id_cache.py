"""A cache of artifacts' ids and relpaths between commands, keyed on what defines them.

Every verb computes the id and relpath of every artifact of the grid (a canonical encoding of
each value, a hash, a readable folder name): about a third of a ``status`` of 100,000. They
depend only on the class (module, qualified name, fields and their defaults), each field's
value, the ids of the artifacts a field holds, and this module's identity code. The cache keeps
them per stage in one file, under a key hashing all of that: any change — a parameter, a
default, a dependency, our code — is a different key and a miss, so a cached answer is never
used for another grid. Only artifacts whose every field holds a plain scalar (exact ``int``,
``float``, ``str``, ``bool``, ``None``) or another artifact take part; the others are computed
as always. Deleting the cache is always safe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import operator
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import _atomic
from . import artifact as artifact_mod
from . import identity
from .artifact import Artifact

MIN_ARTIFACTS = 2000  # smaller stages are quicker to compute than to look up
_PLAIN = frozenset({int, float, str, bool, type(None)})
_VERSION: list[str] = []
_UNSEEN: Any = object()


def _version() -> str:
    """A hash of the code that computes ids and relpaths (read once per process)."""
    if not _VERSION:
        digest = hashlib.sha256()
        for module in (identity, artifact_mod):
            with open(str(module.__file__), "rb") as fh:
                digest.update(fh.read())
        _VERSION.append(digest.hexdigest())
    return _VERSION[0]


def _class_text(tp: type) -> str | None:
    """What of the class decides identities: module, name, fields and defaults; None when the
    class computes its own id or relpath (then it does not take part)."""
    if (getattr(tp, "artifact_id", None) is not Artifact.artifact_id
            or getattr(tp, "relpath", None) is not Artifact.relpath):
        return None
    specs = [(name, key) for name, _default, key, _where in identity._field_specs(tp)]
    every = [f.name for f in dataclasses.fields(tp)]
    return f"{tp.__module__}:{tp.__qualname__}:{specs!r}:{every!r}"


def _line(art: Artifact, classes: dict[type, tuple[int, Any] | None]) -> str | None:
    """One artifact's part of the key (its class by first-seen number, then its field values
    as Python literals), or None when it cannot take part."""
    tp = type(art)
    got = classes.get(tp, _UNSEEN)
    if got is _UNSEEN:
        names = [f.name for f in dataclasses.fields(tp)]  # type: ignore[arg-type]
        got = classes[tp] = None if _class_text(tp) is None else (
            len(classes), operator.attrgetter(*names) if len(names) > 1
            else (lambda a, n=names[0]: (getattr(a, n),)) if names else (lambda a: ()))
    if got is None:
        return None
    number, values_of = got
    values = values_of(art)
    for value in values:
        if type(value) not in _PLAIN:
            return _mixed_line(number, values)
    return f"{number}{values!r}"


def _mixed_line(number: int, values: tuple[Any, ...]) -> str | None:
    """The key part of an artifact with artifacts among its fields: those by their ids."""
    parts: list[str] = []
    for value in values:
        if type(value) in _PLAIN:
            parts.append(repr(value))
        elif isinstance(value, Artifact):
            parts.append("@" + value.artifact_id)
        else:
            return None
    return f"{number}@({', '.join(parts)})"


def prime(artifacts: Sequence[Artifact], path: Path) -> int:
    """Give ``artifacts`` their cached ids and relpaths from ``path`` when its key matches;
    otherwise compute them and write the cache. Returns how many were taken from the cache."""
    if len(artifacts) < MIN_ARTIFACTS:
        return 0
    classes: dict[type, tuple[int, Any] | None] = {}
    chosen, lines = [], []
    for art in artifacts:
        if "_exp_id" in art.__dict__:
            continue
        line = _line(art, classes)
        if line is not None:
            chosen.append(art)
            lines.append(line)
    if not chosen:
        return 0
    key = _key(lines, classes)
    cached = _read(path, key, len(chosen))
    if cached is not None:
        for art, (aid, rel) in zip(chosen, cached, strict=True):
            d = art.__dict__
            d["_exp_id"], d["_exp_relpath"] = aid, rel
        return len(chosen)
    _write(path, key, [(a.artifact_id, a.relpath) for a in chosen])
    return 0


def _key(lines: Iterable[str], classes: dict[type, tuple[int, Any] | None]) -> str:
    """The hash of our identity code, each class's definition and every artifact's line."""
    digest = hashlib.sha256(_version().encode())
    for number, tp in enumerate(classes):
        digest.update(f"\n{number}={_class_text(tp)}".encode())
    digest.update("\n".join(lines).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _read(path: Path, key: str, count: int) -> list[Any] | None:
    """The cached (id, relpath) pairs when the file is ours and holds this key."""
    data = _atomic.read_own_json(str(path))
    try:
        pairs = data["pairs"]
        if data["key"] != key or not isinstance(pairs, list) or len(pairs) != count:
            return None
        return pairs
    except (ValueError, KeyError, TypeError):
        return None


def _write(path: Path, key: str, pairs: list[tuple[str, str]]) -> None:
    """Keep the pairs for the next command (best effort: a cache is never required)."""
    _atomic.keep_json(str(path), {"key": key, "pairs": pairs}, indent=None)


def prime_stages(stages: Mapping[str, Iterable[Artifact]], names: Sequence[str], home: Path,
                 project: str) -> None:
    """:func:`prime` each named stage from its cache file under ``home``/cache/ids."""
    for name in names:
        tag = hashlib.sha256(f"{project}\0{name}".encode()).hexdigest()[:16]
        prime(list(stages[name]), home / "cache" / "ids" / f"{tag}.json")
