"""The ``remotes`` config key: the clusters a user reaches over SSH, by name.

``"remotes": {"mycluster": {"ssh": "mycluster", "python": "/opt/env/bin/python",
"code_root": "/home/me/experiments-code", "artifact_path": "/scratch/me/outputs"}}``, in the
user's or the site's ``config.json`` (a later layer replaces a remote of the same name whole).
``ssh`` is a host of the user's own ``~/.ssh/config`` (so ProxyJump, keys and agents work as the
user set them) or ``user@host``; the three paths are absolute paths on the cluster. Pure: the
config module validates each file with :func:`parse`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

KEY = "remotes"
FIELDS = {
    "ssh": "a host of your ~/.ssh/config, or user@host",
    "python": "the Python on the cluster that has experiments installed (absolute path)",
    "code_root": "a folder on the cluster for the code shipped from here (absolute path)",
    "artifact_path": "the artifact root on the cluster (absolute path)",
}
EXAMPLE = ('{"mycluster": {"ssh": "mycluster", "python": "/opt/env/bin/python", '
           '"code_root": "/home/me/experiments-code", "artifact_path": "/scratch/me/outputs"}}')
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9_.%+-]+(@[A-Za-z0-9_.:%\[\]-]+)?")


@dataclass(frozen=True)
class Remote:
    """One named cluster: how to reach it and where things go there."""

    name: str
    ssh: str
    python: str
    code_root: str
    artifact_path: str


def parse(value: Any, path: Path) -> dict[str, Remote]:
    """The remotes of one config file (or of the merged layers); errors name file and key."""
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {KEY} must map names to clusters, e.g. {EXAMPLE}")
    return {name: _remote(name, entry, path) for name, entry in value.items()}


def _remote(name: str, entry: Any, path: Path) -> Remote:
    """One remote entry checked: the four keys, a usable host, absolute paths."""
    where = f"{path}: {KEY}.{name}"
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{path}: {KEY}: {name!r:.40} is not a usable name; use letters, "
                          "digits, '.', '_' or '-'")
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be an object with {', '.join(FIELDS)}, e.g. {EXAMPLE}")
    unknown = sorted(set(entry) - set(FIELDS))
    missing = [k for k in FIELDS if k not in entry]
    if unknown or missing:
        what = (f"unknown key(s) {', '.join(unknown)}" if unknown
                else f"missing {', '.join(missing)}")
        raise ConfigError(f"{where}: {what}; it needs " + "; ".join(
            f"{k}: {v}" for k, v in FIELDS.items()))
    host = entry["ssh"]
    if not isinstance(host, str) or not _HOST.fullmatch(host) or host.startswith("-"):
        raise ConfigError(f"{where}.ssh must be {FIELDS['ssh']} (no spaces, not starting with "
                          f"'-'), got {host!r:.60}")
    for key in ("python", "code_root", "artifact_path"):
        item = entry[key]
        if not isinstance(item, str) or not item.startswith("/") or any(
                c in item for c in "\x00\n"):
            raise ConfigError(f"{where}.{key} must be {FIELDS[key]}, got {item!r:.60}")
    return Remote(name, host, entry["python"], entry["code_root"].rstrip("/") or "/",
                  entry["artifact_path"])


def find(remotes: Mapping[str, Remote], name: str, config_path: Path) -> Remote:
    """The remote ``name``, or an error listing the known ones and how to add one."""
    if name in remotes:
        return remotes[name]
    known = ", ".join(sorted(remotes)) or "none"
    raise ConfigError(f"no remote named {name!r} in config.json (known: {known}); add it to "
                      f"{config_path} under \"{KEY}\", e.g. {EXAMPLE}")
