"""Results as data: one view per artifact (parameters, folder, state, provenance, metrics) and
the table made from them. Pure except for reading the artifact's own small files.

Parameters are flattened by field path (``lr``, ``base_model.learning_rate`` for a field of a
dependency), defaults included. A built (or stale) result shows the values it was *built with*,
from its own record (``params`` in ``.artifact.json``; a dependency's from the record of the
build it consumed), and the ``changed`` column names each parameter whose value differs from
what the experiment gives today, with today's value. Metrics come from a JSON file in the
artifact folder: ``metrics.json``, or the name in the artifact class's ``metrics_file``
attribute; nested keys are joined with ``.``, and a metric whose name is also a parameter's or
one of the table's own columns (``state``, ``changed``, ``folder``) is called
``metrics.<key>``. A file that cannot be shown (too
big, not JSON, nested deeper than ``MAX_DEPTH``) is left out with a note naming the artifact.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import paths
from ..errors import ExperimentsError
from ..model import identity
from ..model.artifact import Artifact
from ..model.selection import SelectionError
from ..model.sweep_summary import SweepSummary
from ..worker import provenance as prov
from .status import JSON_VERSION, ArtifactState

METRICS_FILE = "metrics.json"
STATE = "state"
CHANGED = "changed"
FOLDER = "folder"
_MAX_METRICS_BYTES = 4 * 1024 * 1024  # a metrics file is a summary; a bigger one is skipped
MAX_DEPTH = 32  # lists and objects nested deeper are no summary either: skipped with a note
BRACKET, RUNG, DECISION = "bracket", "rung", "decision"  # a sweep's table only
TOOL_COLUMNS = (STATE, CHANGED, FOLDER)  # the table's own columns; no metric takes their names


def metrics_file(artifact: Artifact) -> str:
    """The metrics file's name for ``artifact``'s class (``metrics_file`` class attribute)."""
    name = getattr(type(artifact), "metrics_file", METRICS_FILE)
    return name if isinstance(name, str) and name else METRICS_FILE


def flatten_params(artifact: Artifact, prefix: str = "") -> dict[str, Any]:
    """Every field (defaults included) as JSON-able values, a dependency's by ``dep.field``."""
    flat = _flat(artifact)
    return {f"{prefix}{k}": v for k, v in flat.items()} if prefix else dict(flat)


def _flat(artifact: Artifact) -> dict[str, Any]:
    """``flatten_params`` without prefix, cached on the (immutable) artifact: a dependency
    shared by many artifacts is flattened once."""
    cached = artifact.__dict__.get("_exp_flat")
    if cached is None:
        plain = identity.encode_params(artifact)
        cached = {}
        for f in dataclasses.fields(artifact):  # type: ignore[arg-type]
            value = getattr(artifact, f.name)
            if isinstance(value, Artifact):
                cached.update({f"{f.name}.{k}": v for k, v in _flat(value).items()})
            else:
                cached[f.name] = plain[f.name]
        object.__setattr__(artifact, "_exp_flat", cached)
    return cached


def flatten_metrics(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``outer.inner`` keys; lists and scalars stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_metrics(value, f"{name}."))
        else:
            out[name] = value
    return out


def read_json(path: str) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when absent, too big, unreadable or not an object."""
    return read_json_noted(path)[0]


def read_json_noted(path: str) -> tuple[dict[str, Any] | None, str]:
    """A JSON object from ``path`` and, when there is a file that cannot be used, why (a note
    for the views, which show every other artifact as usual): too big, not JSON, not an object,
    or nested deeper than ``MAX_DEPTH`` (no view of it could be drawn without recursing)."""
    name = os.path.basename(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_METRICS_BYTES + 1)
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, f"{name} cannot be read ({exc.strerror}); left out"
    if len(raw) > _MAX_METRICS_BYTES:
        return None, f"{name} is over {_MAX_METRICS_BYTES // 2**20} MB; left out"
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except RecursionError:
        return None, f"{name} nests deeper than {MAX_DEPTH} levels; left out"
    except ValueError as exc:
        return None, f"{name} is not valid JSON ({exc}); left out"
    if not isinstance(data, dict):
        return None, f"{name} holds a JSON {type(data).__name__}, not an object; left out"
    if too_deep(data, MAX_DEPTH):
        return None, f"{name} nests deeper than {MAX_DEPTH} levels; left out"
    return data, ""


def too_deep(value: Any, limit: int) -> bool:
    """Whether lists and objects in ``value`` nest deeper than ``limit`` (without recursing)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children)
    return False


def read_metrics(root: str, artifact: Artifact) -> dict[str, Any]:
    """The flattened metrics of ``artifact`` (empty when it wrote none)."""
    return read_metrics_noted(root, artifact)[0]


def read_metrics_noted(root: str, artifact: Artifact) -> tuple[dict[str, Any], str]:
    """The flattened metrics of ``artifact`` and why its file was left out (see
    :func:`read_json_noted`)."""
    data, note = read_json_noted(
        f"{paths.artifact_dir(root, artifact.relpath)}/{metrics_file(artifact)}")
    return (flatten_metrics(data) if data else {}), note


def built_with(root: str, artifact: Artifact, meta: Mapping[str, Any] | None,
               metas: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The flattened parameters ``artifact``'s result was built with, from its record ``meta``
    (None when it recorded none: built before parameters were recorded). A field the record
    lacks (added since) is None; a dependency's fields come from the record of the very build
    it consumed, None when that build was replaced since. ``metas`` caches records by relpath."""
    recorded = meta.get("params") if meta else None
    if not isinstance(recorded, dict):
        return None
    info = meta.get("provenance") if meta else None
    consumed = info.get("dependencies") if isinstance(info, Mapping) else None
    out: dict[str, Any] = {}
    for f in dataclasses.fields(artifact):  # type: ignore[arg-type]
        value = getattr(artifact, f.name)
        if isinstance(value, Artifact):
            dep = _dep_built_with(root, value, recorded.get(f.name), consumed, metas)
            out.update({f"{f.name}.{k}": v for k, v in dep.items()})
        else:
            out[f.name] = recorded.get(f.name)
    return out


def _dep_built_with(root: str, dep: Artifact, recorded: Any, consumed: Any,
                    metas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A dependency's flattened parameters as consumed (None each when they cannot be told)."""
    unknown = dict.fromkeys(_flat(dep))
    relpath = recorded.get("relpath") if isinstance(recorded, Mapping) else None
    if relpath != dep.relpath:
        return unknown
    if relpath not in metas:  # its record, and the build id its done marker names now
        metas[relpath] = {"meta": read_json(paths.meta_file(root, relpath)) or {},
                          "done": prov.build_id(root, relpath)}
    meta, done = metas[relpath]["meta"], metas[relpath]["done"]
    info = meta.get("provenance")
    build = info.get("build_id") if isinstance(info, Mapping) else None
    if isinstance(consumed, Mapping) and relpath in consumed and (
            consumed[relpath] != build or build != done):
        return unknown  # rebuilt since: the build it consumed is gone
    found = built_with(root, dep, meta, metas)
    return unknown if found is None else found


@dataclass(frozen=True)
class ArtifactView:
    """One artifact of a stage as it is today.

    ``params`` are flattened by field path, ``metrics`` by key (see the module's docstring);
    ``provenance`` is what the worker wrote to ``.artifact.json`` (empty before a first run);
    ``detail`` says why a failed or waiting artifact is in its state, and ``job`` is the task
    that last tried to build it (``<job>_<index>``, empty when never submitted); ``note`` says
    why a file of its own was left out (a metrics file nested too deep, not JSON, ...).
    """

    artifact: Artifact
    stage: str
    params: Mapping[str, Any]
    folder: str
    state: ArtifactState
    provenance: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    detail: str = ""
    job: str = ""
    note: str = ""  # why its metrics (or record) could not be read, when they could not
    built_with: Mapping[str, Any] | None = None  # the parameters its result was built with

    @property
    def changed(self) -> dict[str, Any]:
        """Parameter → today's value, for each one whose result was built with another value."""
        if self.built_with is None:
            return {}
        was = self.built_with
        return {k: v for k, v in self.params.items() if k not in was or was[k] != v}

    @property
    def relpath(self) -> str:
        return self.artifact.relpath

    @property
    def artifact_id(self) -> str:
        return self.artifact.artifact_id


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers, then strings, then anything else by its text; missing values last."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (3, 0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (2, json.dumps(value, sort_keys=True, default=str))


@dataclass(frozen=True)
class ResultTable:
    """Rows of a stage's results: parameters, then metrics, then ``state`` and ``folder``."""

    stage: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    param_columns: tuple[str, ...] = ()
    metric_columns: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # per artifact: a file of its own that was left out, and why

    def __len__(self) -> int:
        return len(self.rows)

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts, column → value."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self._index(name)
        return [row[i] for row in self.rows]

    def _index(self, name: str) -> int:
        try:
            return self.columns.index(name)
        except ValueError:
            raise SelectionError(f"no column {name!r} in the {self.stage} table; columns are: "
                                 f"{', '.join(self.columns)}") from None

    def select(self, columns: Sequence[str]) -> ResultTable:
        """Only ``columns``, in that order."""
        idx = [self._index(c) for c in columns]
        return dataclasses.replace(
            self, columns=tuple(columns), rows=tuple(tuple(r[i] for i in idx) for r in self.rows),
            param_columns=tuple(c for c in columns if c in self.param_columns),
            metric_columns=tuple(c for c in columns if c in self.metric_columns))

    def sort(self, key: str) -> ResultTable:
        """Rows ordered by ``key`` (``-key``: descending); missing values last either way."""
        desc = key.startswith("-")
        i = self._index(key[1:] if desc else key)
        present = [r for r in self.rows if _sort_key(r[i])[0] < 3]
        absent = [r for r in self.rows if _sort_key(r[i])[0] == 3]
        present.sort(key=lambda r: _sort_key(r[i]), reverse=desc)
        return dataclasses.replace(self, rows=tuple(present + absent))

    # -- formats ---------------------------------------------------------------------------
    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` (install ``slurm-experiments[results]`` for pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ExperimentsError("to_pandas() needs pandas; install it with "
                                   "pip install 'slurm-experiments[results]'") from None
        return pd.DataFrame.from_records(list(self.rows), columns=list(self.columns))

    def to_json(self) -> str:
        """One JSON document: ``version`` (see docs/states.md), the stage, the columns by kind
        and ``rows``, one object per row (column → value)."""
        return json.dumps({"version": JSON_VERSION, "stage": self.stage,
                           "columns": list(self.columns), "params": list(self.param_columns),
                           "metrics": list(self.metric_columns), "rows": self.records(),
                           "notes": list(self.notes)}, ensure_ascii=False, default=str)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows([cell_text(v) for v in row] for row in self.rows)
        return buf.getvalue()

    def to_markdown(self) -> str:
        def esc(text: str) -> str:
            return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(esc(c) for c in self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(esc(cell_text(v)) for v in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"


def cell_text(value: Any) -> str:
    """How a cell reads in text formats: JSON for containers, empty for missing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def metric_names(params: Iterable[str], metrics: Iterable[str]) -> dict[str, str]:
    """Metric key → its column name: ``metrics.<key>`` when a parameter or one of the table's
    own columns (``state``, ``folder``) has the name, so a metric never shadows either."""
    taken = {*params, *TOOL_COLUMNS}
    out: dict[str, str] = {}
    for m in metrics:
        name = m
        while name in taken:
            name = f"metrics.{name}"
        taken.add(name)
        out[m] = name
    return out


def make_table(stage: str, views: Sequence[ArtifactView],
               sweep: SweepSummary | None = None) -> ResultTable:
    """The table of ``views``: every parameter and metric seen, in first-seen order; each
    result's parameters as it was built (``changed``: the ones that differ from today). A
    sweep's table also has each trial's ``rung`` and ``decision`` (and ``bracket``)."""
    param_cols: dict[str, None] = {}
    metric_keys: dict[str, None] = {}
    for v in views:
        param_cols.update(dict.fromkeys(v.params))
        metric_keys.update(dict.fromkeys(v.metrics))
    own = _sweep_columns(sweep)
    names = metric_names([*param_cols, *own], metric_keys)
    columns = (*param_cols, *names.values(), *own, STATE, CHANGED, FOLDER)
    rows = tuple(
        (*(_param(v, p) for p in param_cols), *(v.metrics.get(m) for m in metric_keys),
         *_sweep_cells(sweep, v, len(own)), v.state.value, v.changed or None, v.folder)
        for v in views)
    notes = tuple(f"{v.relpath}: {v.note}" for v in views if v.note)
    return ResultTable(stage, columns, rows, tuple(param_cols), tuple(names.values()), notes)


def _sweep_columns(sweep: SweepSummary | None) -> tuple[str, ...]:
    """A sweep's own columns: ``rung`` and ``decision``, with ``bracket`` for Hyperband."""
    if sweep is None:
        return ()
    return (BRACKET, RUNG, DECISION) if sweep.brackets > 1 else (RUNG, DECISION)


def _sweep_cells(sweep: SweepSummary | None, view: ArtifactView, n: int) -> tuple[Any, ...]:
    """A trial's bracket, rung and decision (empty when the sweep does not know it)."""
    if sweep is None:
        return ()
    got = sweep.trials.get(view.artifact_id)
    if got is None:
        return (None,) * n
    return (got.bracket, got.rung, got.decision)[-n:]


def _param(view: ArtifactView, name: str) -> Any:
    """A parameter's cell: the value the result was built with, else today's."""
    if view.built_with is not None and name in view.params:
        return view.built_with.get(name)
    return view.params.get(name)
