"""What a code snapshot costs: time and disk of ``snapshots.take`` on this repository and on a
generated 200 MB code tree (2,000 files of 100 kB of random bytes).

For each tree: the first take into an empty store (list, hash, copy + fsync, rename), a reuse
take of unchanged content (list and hash only), and a take after editing one file (a new full
copy). Timed in-process as medians of ``--reps`` runs; the generated files were just written, so
they are read from the page cache (a cold cache on a network file system will be slower).

    python bench/bench_snapshot.py                 # ~1 minute
    python bench/bench_snapshot.py --reps 5 --files 2000 --kb 100
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, WORK, machine, median, table

sys.path.insert(0, str(REPO))  # this checkout's package, not an installed one

from experiments.launching import snapshots  # noqa: E402


def disk_bytes(path: Path) -> int:
    """Blocks really used under ``path`` (what ``du`` reports), symlinks not followed."""
    total = 0
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def timed(code: Path, store: Path, max_bytes: int) -> tuple[float, snapshots.Snapshot]:
    """One ``take`` and its wall time."""
    t0 = time.perf_counter()
    snap = snapshots.take(str(code), str(store), max_bytes=max_bytes)
    return time.perf_counter() - t0, snap


def generate(root: Path, files: int, kb: int) -> None:
    """A code tree of ``files`` random files of ``kb`` kB in 20 folders (incompressible)."""
    if root.exists():
        shutil.rmtree(root)
    for i in range(files):
        path = root / f"pkg{i % 20:02d}" / f"mod{i:05d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(kb * 1000))


def measure(name: str, code: Path, edit: Path, reps: int, max_bytes: int) -> list[object]:
    """First take, reuse take and take-after-edit of ``code``; one table row."""
    firsts, reuses, edits = [], [], []
    snap = None
    for rep in range(reps):
        store = WORK / "snapstore"
        shutil.rmtree(store, ignore_errors=True)
        first_s, snap = timed(code, store, max_bytes)
        reuse_s, again = timed(code, store, max_bytes)
        assert again.reused and again.id == snap.id
        original = edit.read_bytes()
        edit.write_bytes(original + f"\n# edit {rep}\n".encode())
        try:
            edit_s, changed = timed(code, store, max_bytes)
        finally:
            edit.write_bytes(original)
        assert changed.id != snap.id and not changed.reused
        firsts.append(first_s)
        reuses.append(reuse_s)
        edits.append(edit_s)
    assert snap is not None
    disk = disk_bytes(WORK / "snapstore" / snap.id)
    shutil.rmtree(WORK / "snapstore", ignore_errors=True)
    mode = "git" if snap.git else "plain"
    return [name, mode, snap.files, snap.bytes / 1e6, disk / 1e6, median(firsts),
            median(reuses), median(edits)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--kb", type=int, default=100)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    print(machine())
    rows = [measure("this repository", REPO, REPO / "README.md", args.reps,
                    snapshots.DEFAULT_MAX_BYTES)]
    big = WORK / "bigtree"
    generate(big, args.files, args.kb)
    limit = 2 * args.files * args.kb * 1000
    rows.append(measure(f"generated {args.files} x {args.kb} kB", big,
                        big / "pkg00" / "mod00000.py", args.reps, limit))
    subprocess.run(["git", "init", "-q", str(big)], check=True)
    rows.append(measure("same, git (all untracked)", big, big / "pkg00" / "mod00000.py",
                        args.reps, limit))
    shutil.rmtree(big)
    print(table("snapshots.take (medians, seconds; sizes in MB)",
                ["tree", "mode", "files", "content MB", "disk MB", "first take s",
                 "reuse take s", "take after 1-file edit s"], rows))


if __name__ == "__main__":
    main()
