"""Which artifacts are built, found with one directory listing per folder instead of one
``stat`` per artifact.

An artifact is built when ``<root>/<relpath>/.done`` exists and a trusted account owns it
(:mod:`experiments.worker.trust`). Planning or ``status`` of a grid
asks that of every artifact; most of them share a parent folder (``<root>/<ClassName>/``). One
listing of that folder says which artifact folders exist at all, and only those are asked for
their done marker: a grid never run costs one listing per class instead of a million ``stat``
calls. A folder that cannot be listed falls back to asking each artifact.

``problem`` says whether a built artifact's folder is safely ours (:mod:`experiments.worker.
folders`): one ``lstat`` of its folder, the folders above it once per index.
"""

from __future__ import annotations

import os
import stat

from .. import paths
from ..worker import folders, trust

_UNSEEN = "\0unseen"  # not judged yet (None: judged, and safely ours)


class DoneIndex:
    """``index(relpath)``: does the artifact at ``relpath`` under ``root`` have its done marker?

    Listings are taken on first use and kept, so an index answers for one moment of one
    command (planning, one ``status``); make a new one for the next.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self._folders: dict[str, frozenset[str] | None] = {}
        self._built: dict[str, bool] = {}
        self._judged: dict[str, str | None] = {}  # folder → why it is not safely ours
        self._trust: folders.Trust | None = None

    def __call__(self, relpath: str) -> bool:
        if not self.has_folder(relpath):
            return False
        built = self._built.get(relpath)
        if built is None:  # exists, and from a trusted account; asked once per artifact
            built = self._built[relpath] = trust.marker_built(self.root, relpath)
        return built

    def exists(self, relpath: str) -> bool:
        """Whether the done marker exists at all, whoever wrote it (staleness asks this)."""
        return self.has_folder(relpath) and os.path.exists(paths.done_marker(self.root, relpath))

    def has_folder(self, relpath: str) -> bool:
        """False when the listing shows the artifact has no folder (so no marker and no file
        of a worker); True when it has one or the parent could not be listed."""
        parent, _, leaf = relpath.rpartition("/")
        try:
            names = self._folders[parent]
        except KeyError:
            names = self._folders[parent] = self._list(parent)
        return names is None or leaf in names

    def _list(self, parent: str) -> frozenset[str] | None:
        folder = os.path.join(self.root, parent) if parent else self.root
        try:
            return frozenset(os.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return frozenset()  # no folder: nothing under it is built
        except OSError:
            return None  # e.g. not readable: ask each artifact

    def problem(self, relpath: str) -> str | None:
        """Why the folder of a built artifact (or one between it and the root) could have been
        changed by another account: a stranger's, writable by others, or a symlink. None when
        it is safely ours (see :mod:`experiments.worker.folders`)."""
        parent, _, _ = relpath.rpartition("/")
        above = self._judged.get(parent, _UNSEEN)
        if above is _UNSEEN:
            above = self._judged[parent] = self._chain(parent)
        if above is not None:
            return above
        return self._judge(os.path.join(self.root, relpath), follow=False)

    def _chain(self, relpath: str) -> str | None:
        """``problem`` of the folders from the root down to ``relpath`` (each judged once)."""
        if not relpath:
            return self._judge(self.root, follow=True)
        parent, _, _ = relpath.rpartition("/")
        above = self._judged.get(parent, _UNSEEN)
        if above is _UNSEEN:
            above = self._judged[parent] = self._chain(parent)
        return above if above is not None else self._judge(
            os.path.join(self.root, relpath), follow=False)

    def _judge(self, folder: str, follow: bool) -> str | None:
        if self._trust is None:
            self._trust = folders.Trust(*trust.trusted_ids())
        try:
            st = os.stat(folder) if follow else os.lstat(folder)
        except OSError as exc:
            return f"{folder} cannot be checked ({exc.strerror or exc})"
        if stat.S_ISLNK(st.st_mode):
            return f"{folder} is a symlink (to {os.readlink(folder)}), made by " \
                   f"{trust.account(st.st_uid)}"
        why = self._trust.problem(st)
        return None if why is None else f"{folder} ({folders.describe(st)}): {why}"
