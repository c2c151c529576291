"""Code snapshots: what is copied, content-addressed reuse, git state, size limit, gc."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from experiments.errors import ExperimentsError, SnapshotError
from experiments.launching import snapshot_files as _snapshot_files
from experiments.launching import snapshots
from experiments.launching.snapshots import take


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def write(path: Path, text: str, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return path


def files_in(snap_path: str) -> set[str]:
    out = set()
    for dirpath, _dirs, files in os.walk(snap_path):
        for f in files:
            out.add(os.path.relpath(os.path.join(dirpath, f), snap_path))
    return out


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git checkout with a commit: tracked files, an ignore rule, user name and email set."""
    r = tmp_path / "code"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    git(r, "config", "user.name", "Test")
    git(r, "config", "user.email", "test@example.com")
    write(r / "train.py", "print('v1')\n")
    write(r / "pkg" / "model.py", "W = 1\n")
    write(r / ".gitignore", "*.log\nbuild/\n")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "first")
    return r


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "store")


def test_git_tracked_and_untracked_included_ignored_left_out(repo: Path, store: str) -> None:
    write(repo / "new.py", "x = 1\n")              # untracked, not ignored
    write(repo / "run.log", "noise\n")             # ignored by *.log
    write(repo / "build" / "out.bin", "big\n")     # ignored folder
    snap = take(str(repo), store)
    assert files_in(snap.path) == {"train.py", "pkg/model.py", ".gitignore", "new.py"}
    assert snap.files == 4
    assert snap.path == os.path.join(store, snap.id, "code")
    assert (Path(snap.path) / "train.py").read_text() == "print('v1')\n"


def test_clean_tree_records_commit_and_branch(repo: Path, store: str) -> None:
    snap = take(str(repo), store)
    assert snap.git is not None
    assert snap.git.commit == git(repo, "rev-parse", "HEAD")
    assert snap.git.branch == "main"
    assert snap.git.dirty is False and snap.git.diff_hash is None


def test_dirty_flag_and_diff_hash_follow_edits(repo: Path, store: str) -> None:
    write(repo / "train.py", "print('v2')\n")
    first = take(str(repo), store)
    assert first.git is not None and first.git.dirty and first.git.diff_hash
    assert (Path(first.path) / "train.py").read_text() == "print('v2')\n"  # edits included
    write(repo / "train.py", "print('v3')\n")
    second = take(str(repo), store)
    assert second.git is not None and second.git.dirty
    assert second.git.diff_hash != first.git.diff_hash
    assert second.id != first.id


def test_untracked_file_makes_tree_dirty(repo: Path, store: str) -> None:
    write(repo / "notes.py", "a = 1\n")
    snap = take(str(repo), store)
    assert snap.git is not None and snap.git.dirty and snap.git.diff_hash
    write(repo / "notes.py", "a = 2\n")
    again = take(str(repo), store)
    assert again.git is not None and again.git.diff_hash != snap.git.diff_hash


def test_detached_head_has_no_branch(repo: Path, store: str) -> None:
    git(repo, "checkout", "-q", "--detach")
    snap = take(str(repo), store)
    assert snap.git is not None and snap.git.branch is None and snap.git.commit


def test_identical_content_reuses_the_snapshot(repo: Path, store: str) -> None:
    first = take(str(repo), store)
    second = take(str(repo), store)
    assert second.id == first.id and second.path == first.path
    assert not first.reused and second.reused
    assert second.created_at == first.created_at
    assert [n for n in os.listdir(store)] == [first.id]  # no second copy, no leftovers


def test_same_content_in_another_folder_same_id(repo: Path, tmp_path: Path, store: str) -> None:
    other = tmp_path / "plain"
    for rel in ("train.py", "pkg/model.py", ".gitignore"):
        write(other / rel, (repo / rel).read_text())
    assert take(str(other), store).id == take(str(repo), store).id


def test_edit_after_take_does_not_change_the_snapshot(repo: Path, store: str) -> None:
    snap = take(str(repo), store)
    write(repo / "train.py", "print('edited later')\n")
    assert (Path(snap.path) / "train.py").read_text() == "print('v1')\n"


def test_never_copy_dirs_inside_code_path_are_left_out(repo: Path, tmp_path: Path) -> None:
    write(repo / "results" / "M" / "out.txt", "result\n")       # untracked artifact root
    write(repo / "home" / "config.json", "{}\n")                # EXPERIMENTS_HOME inside
    git(repo, "add", "-f", "home/config.json")                  # even a tracked file
    inner_store = repo / "home" / "snapshots"
    snap = take(str(repo), str(inner_store),
                never_copy=[str(repo / "results"), str(repo / "home")])
    names = files_in(snap.path)
    assert not any(n.startswith(("results/", "home/")) for n in names)
    assert "train.py" in names
    assert snap.git is not None and snap.git.dirty  # the staged tracked file still counts


def test_snapshot_store_inside_plain_tree_is_never_copied(tmp_path: Path) -> None:
    code = tmp_path / "plain"
    write(code / "a.py", "a\n")
    store = code / "snaps"
    first = take(str(code), str(store))
    second = take(str(code), str(store))  # the first snapshot must not leak into the second
    assert second.id == first.id
    assert files_in(first.path) == {"a.py"}


def test_never_copy_equal_to_code_path_is_refused(repo: Path, store: str) -> None:
    with pytest.raises(SnapshotError, match="is the code directory itself"):
        take(str(repo), store, never_copy=[str(repo)])


def test_size_limit_error_names_size_biggest_and_fix(tmp_path: Path, store: str) -> None:
    code = tmp_path / "plain"
    write(code / "small.py", "x\n")
    write(code / "data" / "raw" / "huge.bin", "0" * 5000)
    write(code / "ckpt.pt", "0" * 3000)
    with pytest.raises(SnapshotError) as info:
        take(str(code), store, max_bytes=4000)
    msg = str(info.value)
    assert isinstance(info.value, ExperimentsError)
    assert "8.0 kB" in msg and "limit of 4.0 kB" in msg
    assert "data/raw/huge.bin (5.0 kB)" in msg and "ckpt.pt (3.0 kB)" in msg
    assert "data/ (5.0 kB)" in msg
    assert "excludes" in msg and "max_bytes" in msg
    assert not os.path.exists(store)  # failed before copying anything
    assert take(str(code), store, max_bytes=4000, excludes=["data", "*.pt"]).files == 1


def test_non_git_tree_default_and_custom_excludes(tmp_path: Path, store: str) -> None:
    code = tmp_path / "plain"
    for rel in ("main.py", "lib/util.py", "lib/__pycache__/util.cpython-310.pyc", "x.pyc",
                ".venv/bin/python", "node_modules/m/i.js", ".git/HEAD", "data/raw/a.csv",
                "data/keep.txt", "deep/venv/lib.py"):
        write(code / rel, rel)
    snap = take(str(code), store)
    assert snap.git is None
    assert files_in(snap.path) == {"main.py", "lib/util.py", "data/raw/a.csv", "data/keep.txt"}
    custom = take(str(code), store, excludes=[*snapshots.DEFAULT_EXCLUDES, "data/raw"])
    assert files_in(custom.path) == {"main.py", "lib/util.py", "data/keep.txt"}


@pytest.mark.parametrize(("rel", "extra", "left_out"), [
    ("a.py", [], False), ("x.pyc", [], True), ("lib/x.pyc", [], True), (".git/HEAD", [], True),
    ("deep/venv/lib.py", [], True), ("venvy/a.py", [], False), ("data/raw/a.csv", [], False),
    ("data/raw/a.csv", ["data/raw"], True), ("data/rawx/a.csv", ["data/raw"], False),
    ("x/data/raw/a.csv", ["data/raw"], False), ("a/m.ckpt", ["*.ckpt"], True),
    ("results/a.npy", ["results/*.npy"], True), ("results/a.txt", ["results/*.npy"], False),
])
def test_exclude_patterns(rel: str, extra: list[str], left_out: bool) -> None:
    assert _snapshot_files.excluded(rel, [*snapshots.DEFAULT_EXCLUDES, *extra]) is left_out


def test_executable_bit_kept(repo: Path, store: str) -> None:
    write(repo / "run.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    snap = take(str(repo), store)
    assert os.access(os.path.join(snap.path, "run.sh"), os.X_OK)
    assert not os.access(os.path.join(snap.path, "train.py"), os.X_OK)
    (repo / "run.sh").chmod(0o644)  # the bit is part of the content: another id
    assert take(str(repo), store).id != snap.id


def test_symlinks_inside_kept_relative_outside_made_absolute(tmp_path: Path,
                                                            store: str) -> None:
    code = tmp_path / "plain"
    write(code / "lib" / "real.py", "r\n")
    outside = write(tmp_path / "data.csv", "d\n")
    os.symlink("lib/real.py", code / "alias.py")
    os.symlink("lib", code / "libalias")
    os.symlink("../data.csv", code / "data.csv")
    snap = take(str(code), store)
    root = Path(snap.path)
    assert os.readlink(root / "alias.py") == os.path.join("lib", "real.py")
    assert (root / "alias.py").read_text() == "r\n"
    assert (root / "libalias").is_symlink() and (root / "libalias" / "real.py").exists()
    assert os.readlink(root / "data.csv") == str(outside.resolve())
    assert (root / "data.csv").read_text() == "d\n"


def test_absolute_link_into_the_tree_points_into_the_snapshot(tmp_path: Path,
                                                              store: str) -> None:
    code = tmp_path / "plain"
    real = write(code / "lib" / "real.py", "r\n")
    write(code / "results" / "out.txt", "o\n")
    os.symlink(str(real), code / "abs_alias.py")
    os.symlink(str(code / "results" / "out.txt"), code / "out.txt")
    snap = take(str(code), store, never_copy=[str(code / "results")])
    root = Path(snap.path)
    assert os.readlink(root / "abs_alias.py") == os.path.join("lib", "real.py")
    real.write_text("edited later\n")
    assert (root / "abs_alias.py").read_text() == "r\n"  # frozen, not the live file
    assert os.readlink(root / "out.txt") == str((code / "results" / "out.txt").resolve())


def test_untracked_nested_repo_is_copied_as_a_tree(repo: Path, store: str) -> None:
    nested = repo / "vendor" / "dep"
    nested.mkdir(parents=True)
    git(nested, "init", "-q")
    write(nested / "dep.py", "dep\n")
    snap = take(str(repo), store)
    names = files_in(snap.path)
    assert "vendor/dep/dep.py" in names
    assert not any("/.git/" in n for n in names)
    write(nested / "dep.py", "dep v2\n")  # an edit inside it changes the recorded diff
    again = take(str(repo), store)
    assert snap.git is not None and again.git is not None
    assert again.git.diff_hash != snap.git.diff_hash


def test_repository_without_commits_is_dirty(tmp_path: Path, store: str) -> None:
    r = tmp_path / "fresh"
    r.mkdir()
    git(r, "init", "-q")
    write(r / "a.py", "a\n")
    git(r, "add", "a.py")
    first = take(str(r), store)
    assert first.git is not None and first.git.commit is None and first.git.dirty
    write(r / "a.py", "b\n")
    second = take(str(r), store)
    assert second.git is not None and second.git.diff_hash != first.git.diff_hash


def test_ignored_folder_inside_a_checkout_is_a_plain_tree(repo: Path, store: str) -> None:
    scratch = repo / "build" / "tree"
    write(scratch / "a.py", "a\n")
    write(scratch / "__pycache__" / "a.pyc", "c")
    snap = take(str(scratch), store)
    assert snap.git is None
    assert files_in(snap.path) == {"a.py"}


def test_subfolder_of_a_checkout_holds_only_its_files(repo: Path, store: str) -> None:
    write(repo / "pkg" / "extra.py", "e\n")
    snap = take(str(repo / "pkg"), store)
    assert files_in(snap.path) == {"model.py", "extra.py"}
    assert snap.git is not None and snap.git.dirty


def test_deleted_tracked_file_is_absent(repo: Path, store: str) -> None:
    (repo / "pkg" / "model.py").unlink()
    snap = take(str(repo), store)
    assert "pkg/model.py" not in files_in(snap.path)
    assert snap.git is not None and snap.git.dirty


def test_crash_leftover_never_counts(repo: Path, store: str) -> None:
    os.makedirs(os.path.join(store, ".tmp-999-dead", "code"))
    snap = take(str(repo), store)
    assert not snap.reused
    assert snapshots.load(store, snap.id).files == snap.files


def test_concurrent_takes_of_same_content_both_succeed(repo: Path, store: str) -> None:
    for i in range(50):
        write(repo / "pkg" / f"m{i}.py", f"v = {i}\n")
    results: list[snapshots.Snapshot] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(take(str(repo), store))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({s.id for s in results}) == 1
    assert os.listdir(store) == [results[0].id]


def test_snapshot_json_records_metadata(repo: Path, store: str) -> None:
    snap = take(str(repo), store)
    loaded = snapshots.load(store, snap.id)
    assert (loaded.id, loaded.path, loaded.files, loaded.bytes, loaded.git) == (
        snap.id, snap.path, snap.files, snap.bytes, snap.git)
    assert snap.bytes == sum(os.path.getsize(os.path.join(snap.path, f))
                             for f in files_in(snap.path))


def age(path: str, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_gc_keeps_in_use_and_recent_removes_old(repo: Path, store: str) -> None:
    old_used = take(str(repo), store)
    write(repo / "train.py", "print('v2')\n")
    old_unused = take(str(repo), store)
    write(repo / "train.py", "print('v3')\n")
    recent = take(str(repo), store)
    for s in (old_used, old_unused):
        age(os.path.join(store, s.id), 10 * 86400)
    dry = snapshots.gc(store, in_use={old_used.id}, older_than_s=86400, dry_run=True)
    assert [r.id for r in dry.removed] == [old_unused.id] and dry.dry_run
    assert os.path.isdir(os.path.join(store, old_unused.id))  # dry run removes nothing
    done = snapshots.gc(store, in_use={old_used.id}, older_than_s=86400)
    assert [r.id for r in done.removed] == [old_unused.id]
    assert done.bytes_freed == old_unused.bytes > 0
    assert done.kept_in_use == (old_used.id,)
    assert sorted(os.listdir(store)) == sorted([old_used.id, recent.id])


def test_reuse_refreshes_idle_time(repo: Path, store: str) -> None:
    snap = take(str(repo), store)
    age(os.path.join(store, snap.id), 10 * 86400)
    take(str(repo), store)  # a new launch with the same content uses it again
    assert snapshots.gc(store, in_use=(), older_than_s=86400).removed == ()


def test_gc_removes_old_crash_leftovers_and_ignores_foreign(store: str) -> None:
    young = os.path.join(store, ".tmp-1-young")
    old = os.path.join(store, ".tmp-2-old")
    foreign = os.path.join(store, "not-a-snapshot")
    for d in (young, old, foreign):
        os.makedirs(d)
    write(Path(old) / "code" / "f.py", "x" * 10)
    age(old, 7 * 3600)
    age(foreign, 10 * 86400)
    result = snapshots.gc(store, in_use=(), older_than_s=60)
    assert [r.id for r in result.removed] == [".tmp-2-old"] and result.bytes_freed == 10
    assert sorted(os.listdir(store)) == [".tmp-1-young", "not-a-snapshot"]


def test_not_a_directory_is_refused(tmp_path: Path, store: str) -> None:
    with pytest.raises(SnapshotError, match="not a directory"):
        take(str(tmp_path / "missing"), store)


def test_failure_mid_copy_leaves_nothing_that_counts(repo: Path, store: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real_copy = snapshots._copy_file
    calls = []

    def failing(src: str, dst: str, executable: bool) -> tuple[str, int]:
        calls.append(src)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_copy(src, dst, executable)

    monkeypatch.setattr(snapshots, "_copy_file", failing)
    with pytest.raises(OSError, match="disk full"):
        take(str(repo), store)
    assert os.listdir(store) == []  # no snapshot, no temp left behind
    monkeypatch.setattr(snapshots, "_copy_file", real_copy)
    snap = take(str(repo), store)
    assert not snap.reused and files_in(snap.path) == {"train.py", "pkg/model.py", ".gitignore"}


def test_store_location_is_named_in_paths() -> None:
    from experiments import paths
    assert paths.snapshots_dir(Path("/h")) == Path("/h/snapshots")
