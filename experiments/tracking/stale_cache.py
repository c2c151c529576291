"""Staleness verdicts kept between commands, keyed on everything they were computed from.

Deciding whether a built artifact is stale reads its ``.artifact.json`` and each dependency's
``.done`` (:mod:`experiments.tracking.staleness`): about 0.1 ms per artifact, so ten seconds for
every
``status`` of a built 100,000-artifact grid. The verdict depends only on

* the artifact's own ``.done`` and ``.artifact.json`` (identified by inode, size and mtime:
  the worker writes both by atomic rename, so a rewrite is a new inode),
* today's parameters (a digest of their encoding),
* the code snapshot compared with (when ``stale_on_code_change`` is on),
* each dependency's ``.done`` (same identity) and whether that dependency is stale;

so a verdict is reused exactly when all of those are unchanged, and computed afresh (and kept)
otherwise. A missing, unreadable or foreign cache file is an empty cache: it only ever saves
work, never decides. The file lives in the experiments home, one per project and artifact root.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .. import _atomic

FORMAT = 1


def file_id(path: str) -> str | None:
    """``inode:size:mtime_ns`` of a file, or None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def params_digest(params: Any) -> str:
    """A short digest of encoded parameters (sorted keys: the same values, the same digest)."""
    text = json.dumps(params, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


class VerdictCache:
    """``relpath -> (key, verdict)``, loaded once and saved only when something changed."""

    def __init__(self, path: Path, root: str) -> None:
        self.path = path
        self.root = os.path.normpath(root)
        self._entries: dict[str, list[Any]] = {}
        self._changed = False
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return
        if (isinstance(data, dict) and data.get("format") == FORMAT
                and data.get("root") == self.root and isinstance(data.get("entries"), dict)):
            self._entries = data["entries"]

    def get(self, relpath: str, key: str) -> tuple[bool, str | None]:
        """(True, verdict) when a verdict was kept for exactly ``key``, else (False, None)."""
        entry = self._entries.get(relpath)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == key:
            return True, entry[1]
        return False, None

    def put(self, relpath: str, key: str, verdict: str | None) -> None:
        if self._entries.get(relpath) != [key, verdict]:
            self._entries[relpath] = [key, verdict]
            self._changed = True

    def save(self) -> None:
        """Write the cache (atomically, not fsynced: losing it costs time, not truth)."""
        if not self._changed:
            return
        try:
            _atomic.write_json(str(self.path), {"format": FORMAT, "root": self.root,
                                                "entries": self._entries},
                               indent=None, durable=False)
            self._changed = False
        except OSError:
            pass  # a cache that cannot be written is only slower next time
