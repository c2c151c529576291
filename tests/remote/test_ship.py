"""The laptop side of shipping: the manifest is the launch snapshot's view, and the record of
what a cluster holds decides what a request carries."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.config import settings
from experiments.config.remotes import Remote
from experiments.errors import ExperimentsError
from experiments.experiment import Experiment
from experiments.launching import snapshots
from experiments.remote import ship, ssh

REMOTE = Remote("hpc", "hpc", "/usr/bin/python3", "/home/me/code", "/scratch/out")


def _experiment(code: Path, source: Path) -> Experiment:
    return Experiment(project="p", artifact_path=str(code.parent / "out"), code_path=str(code),
                      stages={}, source_file=str(source))


def _code(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "exp.py").write_text("x = 1\n")
    (code / "pkg" / "a.py").write_text("A = 1\n")
    (code / "pkg" / "__pycache__").mkdir()
    (code / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    return code


def test_the_manifest_is_what_a_launch_would_snapshot_and_its_id(tmp_path: Path) -> None:
    code = _code(tmp_path)
    found = ship.prepare(_experiment(code, code / "exp.py"), settings.load(), settings.home())
    assert [e[0] for e in found.entries] == ["exp.py", "pkg/a.py"]  # __pycache__ left out
    assert found.file == "exp.py"
    taken = snapshots.take(str(code), str(tmp_path / "store"))
    assert found.tree == taken.id


def test_an_experiment_file_outside_its_code_path_is_refused(tmp_path: Path) -> None:
    code = _code(tmp_path)
    outside = tmp_path / "exp.py"
    outside.write_text("x = 1\n")
    with pytest.raises(ExperimentsError, match="lies outside its code_path"):
        ship.prepare(_experiment(code, outside), settings.load(), settings.home())


def test_an_experiment_file_left_out_of_the_snapshot_is_refused(tmp_path: Path) -> None:
    code = _code(tmp_path)
    (code / "venv").mkdir()
    (code / "venv" / "exp.py").write_text("x = 1\n")
    with pytest.raises(ExperimentsError, match="is left out of the code snapshot"):
        ship.prepare(_experiment(code, code / "venv" / "exp.py"), settings.load(),
                     settings.home())


def test_the_record_decides_what_a_request_carries(tmp_path: Path) -> None:
    code = _code(tmp_path)
    found = ship.prepare(_experiment(code, code / "exp.py"), settings.load(), settings.home())
    record = ship.Record.load(settings.home(), REMOTE)
    first = ship.first_request(found, record)  # first contact: the manifest, no blob
    assert (first.manifest, first.delta, first.blobs) == ([list(e) for e in found.entries],
                                                          None, [])
    record.learn(found)
    record.save()
    again = ship.Record.load(settings.home(), REMOTE)
    assert ship.first_request(found, again) == ship.Plan(None, None, [])  # its id only
    (code / "pkg" / "a.py").write_text("A = 2\n")
    (code / "exp.py").unlink()
    (code / "new.py").write_text("x = 1\n")
    edited = ship.prepare(_experiment(code, code / "new.py"), settings.load(), settings.home())
    plan = ship.first_request(edited, again)  # the changes to the tree the cluster has
    assert plan.manifest is None and plan.delta is not None
    assert plan.delta["base"] == found.tree and plan.delta["drop"] == ["exp.py"]
    assert sorted(e[0] for e in plan.delta["set"]) == ["new.py", "pkg/a.py"]
    # new.py holds what exp.py held: the cluster has that blob, only a.py's is sent
    assert [edited.files[d][0] for d in plan.blobs] == [str(code / "pkg" / "a.py")]
    moved = Remote("hpc", "hpc", "/usr/bin/python3", "/elsewhere", "/scratch/out")
    assert ship.Record.load(settings.home(), moved).first_contact  # another code_root


def test_a_file_that_changes_while_it_is_sent_is_not_sent(tmp_path: Path) -> None:
    code = _code(tmp_path)
    found = ship.prepare(_experiment(code, code / "exp.py"), settings.load(), settings.home())
    (code / "exp.py").write_text("x = 2\n")
    with pytest.raises(ExperimentsError, match="changed while the code was being sent"):
        list(ship.blob_frames(found, list(found.files)))


@pytest.fixture
def short(tmp_path: Path) -> Iterator[Path]:
    """A folder with a short path (a socket name must fit in 104 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="exp-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_socket_folder_is_private_and_short_enough(
        short: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = short / "home"
    folder = ssh.control_dir(home)
    assert folder == home / "ssh" and oct(folder.stat().st_mode & 0o777) == "0o700"
    os.chmod(folder, 0o755)
    assert oct(ssh.control_dir(home).stat().st_mode & 0o777) == "0o700"
    monkeypatch.setattr(tempfile, "tempdir", str(short))
    deep = tmp_path / ("d" * 80) / "home"
    fallback = ssh.control_dir(deep)
    assert fallback == short / f"experiments-ssh-{os.getuid()}"
    assert oct(fallback.stat().st_mode & 0o777) == "0o700"


def test_a_socket_folder_of_another_user_is_refused(short: Path) -> None:
    (short / "home" / "ssh").mkdir(parents=True)
    shutil.chown(short / "home" / "ssh", "nobody")  # as root, like the rest of the suite
    with pytest.raises(ssh.RemoteError, match="is not a folder of yours"):
        ssh.control_dir(short / "home")
