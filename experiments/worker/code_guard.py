"""Commands must not write into the code snapshot they run in.

Every task of a launch runs its commands in one shared snapshot of ``code_path`` (so that
``python train.py`` finds the script). A relative write there (``> metrics.json``,
``torch.save("model.pt")``) would land in code every other task shares, last writer wins, and
the artifact would be built with no output. Snapshots are made read-only when they are taken
(:func:`experiments.launching.snapshots.seal`), so such a write fails at once. An account the
modes do not stop (root) is checked instead: the snapshot is listed before and after each
command (folders with their mtimes, so a write is seen even when another task removed its
file again), what was added is removed again and the step fails naming it. A task running
beside the writer in the same snapshot may fail too: it sees the folder change.

Standard library only: the worker imports this on every task start.
"""

from __future__ import annotations

import os
import shutil

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

def needed(code_path: str) -> bool:
    """Whether the modes leave the snapshot writable to this process (root, or a snapshot
    taken before snapshots were sealed): then only a listing before and after tells."""
    return os.access(code_path, os.W_OK)


def listing(code_path: str) -> dict[str, tuple[str, int, int]]:
    """Every entry under ``code_path`` (links not followed, folders with their mtime, which
    any entry added or removed in them changes), without recursion."""
    out: dict[str, tuple[str, int, int]] = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        path = os.path.join(code_path, rel) if rel else code_path
        try:
            out[rel or "."] = ("d", 0, os.lstat(path).st_mtime_ns)
            entries = list(os.scandir(path))
        except OSError:
            continue
        for e in entries:
            sub = f"{rel}/{e.name}" if rel else e.name
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(sub)
                    continue
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            out[sub] = ("l" if e.is_symlink() else "f", st.st_size, st.st_mtime_ns)
    return out


def changes(before: dict[str, Any], after: dict[str, Any]
            ) -> tuple[list[str], list[str], list[str]]:
    """(entries added, files changed or removed, folders whose entries changed), sorted."""
    added = sorted(p for p in after if p not in before)
    changed = sorted(p for p in before if after.get(p) != before[p])
    return (added, [p for p in changed if before[p][0] != "d"],
            [p for p in changed if before[p][0] == "d"])


def undo_added(code_path: str, added: list[str]) -> None:
    """Remove what a command added (a folder with all it holds), deepest first."""
    for rel in sorted(added, key=lambda p: p.count("/"), reverse=True):
        path = os.path.join(code_path, rel)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass  # gone already (another task), or not ours to remove: named in the error


def _names(items: list[str]) -> str:
    top = [p for p in items if not any(p.startswith(q + "/") for q in items if q != p)]
    return ", ".join(top[:5]) + (f" and {len(top) - 5} more" if len(top) > 5 else "")


def message(code_path: str, artifact_dir: str, added: list[str], changed: list[str],
            folders: list[str]) -> str:
    """Why the step failed: what was written into the snapshot, and where results belong."""
    parts = []
    if added:
        parts.append(f"{_names(added)} appeared (removed again)")
    if changed:
        parts.append(f"{_names(changed)} changed or went (this snapshot is damaged: delete "
                     f"{os.path.dirname(code_path)} so that the next launch makes it anew)")
    if folders and not added:
        parts.append(f"entries were added to or removed from {_names(folders)}")
    return (f"the command wrote into the code snapshot, which commands may only read (or "
            f"another task did, running in the same snapshot at the same time): "
            f"{'; '.join(parts)}. Commands run in the snapshot {code_path} so that they find "
            "the code by relative paths; write results under the artifact's folder "
            f"$EXPERIMENTS_ARTIFACT_DIR ({artifact_dir}), e.g. "
            '> "$EXPERIMENTS_ARTIFACT_DIR/metrics.json"')
