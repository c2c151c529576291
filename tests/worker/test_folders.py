"""Artifact folders are ours or refused (issue 25): the worker's walk from the root, and what
``status``, ``table`` and a dependent say of a built artifact someone else could have changed.

The suite runs as root, so "another account" is the test user ``expuser2`` (``chown``)."""

from __future__ import annotations

import grp
import os
import pwd
import time
from pathlib import Path

import pytest

from experiments import paths
from experiments.worker import folders


@pytest.fixture
def other(test_users: tuple[str, ...]) -> pwd.struct_passwd:
    return pwd.getpwnam(test_users[1])


def _chown(path: Path, who: pwd.struct_passwd) -> None:
    os.lchown(path, who.pw_uid, who.pw_gid)


def test_missing_folders_are_made_and_checked(tmp_path: Path) -> None:
    folders.prepare(str(tmp_path / "root"), "Train/lr=0.1-abc", folders.Trust())
    assert (tmp_path / "root" / "Train" / "lr=0.1-abc").is_dir()
    folders.prepare(str(tmp_path / "root"), "Train/lr=0.1-abc", folders.Trust())  # again: fine


def test_a_planted_folder_of_another_account_is_refused(tmp_path: Path,
                                                        other: pwd.struct_passwd) -> None:
    planted = tmp_path / "Train" / "x"
    planted.mkdir(parents=True)
    planted.chmod(0o777)
    _chown(planted, other)
    with pytest.raises(folders.Refused) as err:
        folders.prepare(str(tmp_path), "Train/x", folders.Trust())
    text = str(err.value)
    assert f"refusing to build Train/x in {planted} (drwxrwxrwx {other.pw_name}:" in text
    assert f"it is owned by {other.pw_name}" in text and "trusted_users" in text
    assert list(planted.iterdir()) == []
    planted.chmod(0o755)  # a lab-mate the config trusts, whose folder only they can write
    folders.prepare(str(tmp_path), "Train/x", folders.Trust(uids=[other.pw_uid]))


def test_a_class_folder_of_another_account_is_refused(tmp_path: Path,
                                                      other: pwd.struct_passwd) -> None:
    (tmp_path / "Train").mkdir(mode=0o755)
    _chown(tmp_path / "Train", other)
    with pytest.raises(folders.Refused, match=f"in {tmp_path / 'Train'} .*owned by"):
        folders.prepare(str(tmp_path), "Train/x", folders.Trust())
    assert not (tmp_path / "Train" / "x").exists()


def test_a_folder_others_can_write_is_refused_unless_sticky(tmp_path: Path) -> None:
    (tmp_path / "Train").mkdir()
    (tmp_path / "Train").chmod(0o777)
    with pytest.raises(folders.Refused, match=r"every user can write in it, .*; chmod o-w"):
        folders.prepare(str(tmp_path), "Train/x", folders.Trust())
    (tmp_path / "Train").chmod(0o1777)  # sticky and ours, like /tmp: others add, never swap
    folders.prepare(str(tmp_path), "Train/x", folders.Trust())


def test_a_group_writable_folder_needs_a_trusted_or_private_group(
        tmp_path: Path, other: pwd.struct_passwd) -> None:
    shared = tmp_path / "Train"
    shared.mkdir()
    os.chown(shared, 0, other.pw_gid)  # expuser2's group: not ours
    shared.chmod(0o775)
    group = grp.getgrgid(other.pw_gid).gr_name
    with pytest.raises(folders.Refused, match=f"every member of the group {group} can write "
                                              "in it, .*; chmod g-w .* trusted_groups"):
        folders.prepare(str(tmp_path), "Train/x", folders.Trust())
    folders.prepare(str(tmp_path), "Train/x", folders.Trust(gids=[other.pw_gid]))
    os.chown(shared, other.pw_uid, other.pw_gid)  # the owner's own private group: fine
    folders.prepare(str(tmp_path), "Train/x", folders.Trust(uids=[other.pw_uid]))


@pytest.mark.parametrize("where", ["Train", "Train/x", "Train/x/.checkpoint"])
def test_a_symlink_is_never_followed(tmp_path: Path, where: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "root"
    (root / where).parent.mkdir(parents=True, exist_ok=True)
    (root / where).symlink_to(elsewhere)
    with pytest.raises(folders.Refused, match=f"{root / where} is a symlink \\(to {elsewhere}"):
        folders.prepare(str(root), "Train/x/.checkpoint", folders.Trust())
    assert list(elsewhere.iterdir()) == []


def test_the_root_itself_is_judged(tmp_path: Path, other: pwd.struct_passwd) -> None:
    tmp_path.chmod(0o777)
    with pytest.raises(folders.Refused, match="every user can write in it"):
        folders.prepare(str(tmp_path), "A/x", folders.Trust())
    tmp_path.chmod(0o1777)
    _chown(tmp_path, other)  # a sticky root of another account: it could still swap ours
    with pytest.raises(folders.Refused, match=f"owned by {other.pw_name}"):
        folders.prepare(str(tmp_path), "A/x", folders.Trust())
    os.lchown(tmp_path, 0, 0)  # a sticky root of root's (like /tmp): fine
    folders.prepare(str(tmp_path), "A/x", folders.Trust())


def _built(root: Path, relpath: str, files: dict[str, str]) -> Path:
    folder = root / relpath
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    (folder / paths.DONE).write_text("{}")
    os.utime(folder / paths.DONE, ns=(2_000_000_000 * 10**9,) * 2)  # every file older
    (folder / paths.STATUS).write_text("{}")  # the worker's own file, written after the marker
    return folder


def test_a_built_artifact_whose_files_changed_after_the_marker_is_flagged(
        tmp_path: Path, other: pwd.struct_passwd) -> None:
    folder = _built(tmp_path, "A/x", {"metrics.json": "{}", "model/weights": "w"})
    trust = folders.Trust()
    assert folders.built_problem(str(tmp_path), "A/x", trust) is None
    os.utime(folder / "model" / "weights", ns=(2_000_000_060 * 10**9,) * 2)
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(2_000_000_060))
    assert folders.built_problem(str(tmp_path), "A/x", trust) == (
        f"model/weights in {folder} was modified 60 s after its done marker (at {at})")
    os.utime(folder / "model" / "weights", ns=(1_000_000_000 * 10**9,) * 2)
    _chown(folder / "metrics.json", other)
    assert folders.built_problem(str(tmp_path), "A/x", trust) == (
        f"metrics.json in {folder} belongs to {other.pw_name}, not to the account that built it")
    assert folders.built_problem(str(tmp_path), "A/x", trust, limit=0) is None  # not looked at
