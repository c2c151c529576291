"""Choosing artifacts by their parameters: ``--where key=value``, shared by every verb.

Pure functions over plain data, so ``table``, ``report`` and ``invalidate`` select the same
artifacts from the same words. A condition is ``key=value``:

- ``key`` is a parameter's field path: ``lr``, or ``base_model.learning_rate`` for a field of a
  dependency (or a key inside a dict-valued parameter);
- ``value`` is read as JSON when it parses (``0.1``, ``10``, ``true``, ``null``, ``"a b"``,
  ``[1, 2]``), else taken as the string typed (``squad``). A string parameter also matches the
  text typed as is, so ``seed=1`` finds ``seed="1"``; a bool never equals a number.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ExperimentsError


class SelectionError(ExperimentsError):
    """A ``--where`` condition cannot be read (no ``=``, empty key) or names no parameter:
    the command line is wrong, exit code 2 in every verb (``table``, ``logs``, ``invalidate``,
    ``accept``)."""

    exit_code = 2


@dataclass(frozen=True)
class Condition:
    """One ``key=value``: the field path, the value as parsed, and the text as typed."""

    key: str
    value: Any
    text: str

    def __str__(self) -> str:
        return f"{self.key}={self.text}"


def parse_value(text: str) -> Any:
    """``text`` as JSON when it parses, else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_condition(item: str) -> Condition:
    """One ``key=value`` (the first ``=`` splits; the value may hold more)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SelectionError(f"--where {item!r} is not key=value; for example --where lr=0.001 "
                             "or --where base_model.dataset=squad")
    return Condition(key, parse_value(text), text)


def parse_where(where: Iterable[str] | Mapping[str, Any] | None) -> list[Condition]:
    """Conditions from ``["key=value", ...]`` (the CLI) or ``{key: value}`` (Python values)."""
    if where is None:
        return []
    if isinstance(where, Mapping):
        return [Condition(str(k), v, json.dumps(v, default=str)) for k, v in where.items()]
    if isinstance(where, str):
        return [parse_condition(where)]
    return [parse_condition(item) for item in where]


_MISSING = object()


def lookup(params: Mapping[str, Any], key: str) -> Any:
    """The value at ``key`` in flattened ``params``, descending into dict values for the rest
    of a dotted path; ``MISSING`` when there is none."""
    if key in params:
        return params[key]
    head, dot, rest = key.rpartition(".")
    while dot:
        if head in params:
            value = params[head]
            for part in rest.split("."):
                if not isinstance(value, Mapping) or part not in value:
                    return _MISSING
                value = value[part]
            return value
        head, dot, tail = head.rpartition(".")
        rest = f"{tail}.{rest}"
    return _MISSING


MISSING = _MISSING


def equal(actual: Any, wanted: Any, text: str) -> bool:
    """Whether a parameter value ``actual`` matches the condition's value (or typed text)."""
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return type(actual) is type(wanted) and actual == wanted
    if isinstance(actual, (int, float)) and isinstance(wanted, (int, float)):
        return actual == wanted or (isinstance(actual, float) and isinstance(wanted, float)
                                    and math.isnan(actual) and math.isnan(wanted))
    if isinstance(actual, str):
        return actual == wanted or actual == text
    if isinstance(actual, (list, tuple)) and isinstance(wanted, (list, tuple)):
        return len(actual) == len(wanted) and all(
            equal(a, w, json.dumps(w, default=str)) for a, w in zip(actual, wanted, strict=True))
    return bool(actual == wanted)


def matches(params: Mapping[str, Any], conditions: Iterable[Condition]) -> bool:
    """Whether flattened ``params`` satisfy every condition (an absent key never matches)."""
    for c in conditions:
        actual = lookup(params, c.key)
        if actual is _MISSING or not equal(actual, c.value, c.text):
            return False
    return True


def known(params: Mapping[str, Any], key: str) -> bool:
    """Whether ``key`` names a parameter (or a key inside one) of ``params``."""
    return lookup(params, key) is not _MISSING


def check_keys(conditions: Iterable[Condition], params: Iterable[Mapping[str, Any]],
               where: str) -> None:
    """Raise a :class:`SelectionError` naming the first condition whose key no artifact's
    ``params`` have (a typo must not select nothing silently), with the closest parameter name
    and the list of them; ``where`` names what was searched (``stage 'train'``)."""
    every = list(params)
    for c in conditions:
        if every and not any(known(p, c.key) for p in every):
            raise SelectionError(unknown_key(c, sorted({k for p in every for k in p}), where))


def unknown_key(condition: Condition, names: list[str], where: str) -> str:
    """``--where lrr=0.1: stage 'train' has no parameter 'lrr' (did you mean 'lr'?); its
    parameters are: …`` — the one message every verb gives for a mistyped key."""
    close = difflib.get_close_matches(condition.key, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"--where {condition}: {where} has no parameter {condition.key!r}{hint}; its "
            f"parameters are: {', '.join(names)}")
