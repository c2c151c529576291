"""Config layers: built-in defaults < the site file < the user's file, merged with provenance.

Pure functions over parsed JSON (reading and validating files is
:mod:`experiments.config.settings`'s).
A later layer wins key by key. Three keys merge deeper than that:

* ``default_slurm_args``: per partition, then per requirement (a site's ``gpu.time`` and a
  user's ``gpu.cpus`` both hold); ``null`` removes an inherited requirement, or a whole
  partition's entry;
* ``local``: per key (``cpus``, ``gpus``, ``mem_gb``); ``remotes``: per remote name (each
  remote whole);
* ``setup`` (at the top and inside a partition's entry): lines add up, site's first.

Every leaf value remembers the layer it came from, so ``config show`` can say where each value
came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SETUP = "setup"
BY_PARTITION = "default_slurm_args"
PER_KEY = ("local", "remotes")
KeyPath = tuple[str, ...]


@dataclass(frozen=True)
class Layer:
    """One source of settings: ``kind`` is "built-in", "site" or "user"; ``path`` its file."""

    kind: str
    path: Path | None
    data: Mapping[str, Any]
    note: str = ""  # e.g. why a file's content does not count

    @property
    def label(self) -> str:
        return self.kind if self.path is None else f"{self.kind} {self.path}"


@dataclass(frozen=True)
class Merged:
    """The merged settings and, per leaf (``("default_slurm_args", "gpu", "time")``), the
    labels of the layers that gave it (more than one only for setup lines)."""

    data: dict[str, Any]
    sources: dict[KeyPath, tuple[str, ...]] = field(default_factory=dict)
    layers: tuple[Layer, ...] = ()

    def source(self, *key: str) -> str:
        """Where ``key`` came from, as text (``"built-in"`` when no layer set it)."""
        return ", then ".join(self.sources.get(key, ("built-in",)))


def merge(layers: Sequence[Layer]) -> Merged:
    """Merge ``layers`` in order (later ones win), keeping where each value came from."""
    data: dict[str, Any] = {}
    sources: dict[KeyPath, tuple[str, ...]] = {}
    for layer in layers:
        for key, value in layer.data.items():
            if key == BY_PARTITION and isinstance(value, Mapping):
                _merge_partitions(data.setdefault(key, {}), value, layer.label, sources)
            elif key in PER_KEY and isinstance(value, Mapping):
                for sub, item in value.items():
                    data.setdefault(key, {})[sub] = item
                    sources[(key, sub)] = (layer.label,)
            elif key == SETUP and isinstance(value, list):
                _add_lines(data, sources, (key,), value, layer.label)
            else:
                data[key] = value
                for old in [k for k in sources if k[0] == key]:
                    del sources[old]
                sources[(key,)] = (layer.label,)
    return Merged(data, sources, tuple(layers))


def _merge_partitions(into: dict[str, Any], given: Mapping[str, Any], label: str,
                      sources: dict[KeyPath, tuple[str, ...]]) -> None:
    for partition, entry in given.items():
        if entry is None:  # null: drop every inherited default of this partition
            into.pop(partition, None)
            for old in [k for k in sources if k[:2] == (BY_PARTITION, partition)]:
                del sources[old]
            continue
        if not isinstance(entry, Mapping):
            into[partition] = entry  # validation reports it, naming the file
            continue
        target = into.setdefault(partition, {})
        for key, value in entry.items():
            path = (BY_PARTITION, partition, key)
            if value is None:
                target.pop(key, None)
                sources.pop(path, None)
            elif key == SETUP and isinstance(value, list):
                _add_lines(target, sources, path, value, label, key)
            else:
                target[key] = value
                sources[path] = (label,)


def _add_lines(into: dict[str, Any], sources: dict[KeyPath, tuple[str, ...]], path: KeyPath,
               lines: list[Any], label: str, key: str = SETUP) -> None:
    """Setup lines add up: the inherited ones run first."""
    into[key] = [*into.get(key, []), *lines]
    if lines:
        sources[path] = (*sources.get(path, ()), label)


def without_nulls(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with the ``null`` entries of ``default_slurm_args`` left out: what one layer
    means on its own (a null only removes what an earlier layer gave)."""
    out = dict(data)
    partitions = data.get(BY_PARTITION)
    if isinstance(partitions, Mapping):
        out[BY_PARTITION] = {
            p: ({k: v for k, v in e.items() if v is not None} if isinstance(e, Mapping) else e)
            for p, e in partitions.items() if e is not None}
    return out


def leaves(merged: Merged) -> list[tuple[KeyPath, Any, str]]:
    """Every leaf of the merged settings with its value and source, in a stable order
    (top-level keys sorted; a partition's requirements under it)."""
    out: list[tuple[KeyPath, Any, str]] = []
    for key in sorted(merged.data):
        value = merged.data[key]
        if key == BY_PARTITION and isinstance(value, Mapping):
            for partition in sorted(value):
                entry = value[partition]
                for sub in sorted(entry) if isinstance(entry, Mapping) else ():
                    path = (key, partition, sub)
                    out.append((path, entry[sub], merged.source(*path)))
        elif key in PER_KEY and isinstance(value, Mapping):
            for sub in sorted(value):
                out.append(((key, sub), value[sub], merged.source(key, sub)))
        else:
            out.append(((key,), value, merged.source(key)))
    return out


def nested_sources(merged: Merged) -> dict[str, Any]:
    """The sources shaped like the settings (for ``config show --json``)."""
    out: dict[str, Any] = {}
    for path, _value, source in leaves(merged):
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = source
    return out
