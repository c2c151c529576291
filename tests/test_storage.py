"""experiments.storage against a real local GCS API server (tests/support/gcs.py) and fsspec's
file:// and memory:// filesystems. No mocks, except one patched rename to interrupt a download."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from experiments import storage
from experiments.errors import DefinitionError, StorageError

REPO = Path(__file__).resolve().parent.parent
TREE = {"config.json": b'{"lr": 0.1}\n', "weights/layer0.bin": os.urandom(70_000),
        "weights/deep/layer1.bin": b"\x00\xff" * 1000, "empty.txt": b""}


@pytest.fixture
def prefix(gcs_emulator) -> str:
    """A fresh prefix in the emulator's bucket (the bucket is shared by the session)."""
    return f"t-{uuid.uuid4().hex[:8]}"


def _tree(root: Path, files: dict[str, bytes] = TREE) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when we return: connections are refused


def test_upload_file(gcs_emulator, prefix, tmp_path):
    f = tmp_path / "result.csv"
    f.write_bytes(b"a,b\n1,2\n")
    storage.upload(str(f), f"gs://{gcs_emulator.bucket}/{prefix}/out.csv")
    storage.upload(str(f), f"gs://{gcs_emulator.bucket}/{prefix}/dir/")  # '/' -> keep the name
    assert [o for o in gcs_emulator.objects() if o.startswith(prefix)] == [
        f"{prefix}/dir/result.csv", f"{prefix}/out.csv"]


def test_upload_tree_and_download_back(gcs_emulator, prefix, tmp_path):
    src = _tree(tmp_path / "model")
    log = io.StringIO()
    storage.upload(str(src), f"gs://{gcs_emulator.bucket}/{prefix}/m1", log=log)
    assert [o for o in gcs_emulator.objects() if o.startswith(prefix)] == sorted(
        f"{prefix}/m1/{rel}" for rel in TREE)
    assert "attempt 1/4" in log.getvalue() and "done in" in log.getvalue()

    dst = tmp_path / "not" / "yet" / "there"  # parents are created
    storage.download(f"gs://{gcs_emulator.bucket}/{prefix}/m1", str(dst))
    assert _read_tree(dst) == TREE
    one = tmp_path / "new-dir" / "layer0.bin"
    storage.download(f"gs://{gcs_emulator.bucket}/{prefix}/m1/weights/layer0.bin", str(one))
    assert one.read_bytes() == TREE["weights/layer0.bin"]
    assert sorted(os.listdir(one.parent)) == ["layer0.bin"]  # no temporary leftovers


def test_upload_twice_gives_the_same_layout(gcs_emulator, prefix, tmp_path):
    src = _tree(tmp_path / "model")
    url = f"gs://{gcs_emulator.bucket}/{prefix}/m1"
    storage.upload(str(src), url)  # the prefix does not exist yet
    first = gcs_emulator.objects()
    storage.upload(str(src), url)  # now it does: fsspec put alone would nest model/ inside
    storage.upload(str(src), url + "/")
    assert gcs_emulator.objects() == first
    assert not any("/m1/model/" in o for o in first)


def test_download_replaces_an_existing_directory(gcs_emulator, prefix, tmp_path):
    storage.upload(str(_tree(tmp_path / "model")), f"gs://{gcs_emulator.bucket}/{prefix}")
    dst = _tree(tmp_path / "dst", {"stale.txt": b"old", "config.json": b"old"})
    storage.download(f"gs://{gcs_emulator.bucket}/{prefix}", str(dst))
    assert _read_tree(dst) == TREE
    assert sorted(os.listdir(tmp_path)) == ["dst", "model"]


def test_missing_bucket_is_not_retried(gcs_emulator, tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("x")
    log = io.StringIO()
    with pytest.raises(StorageError) as err:
        storage.upload(str(f), "gs://no-such-bucket/a/x.txt", log=log, retries=3, backoff_s=0)
    assert "gs://no-such-bucket/a/x.txt" in str(err.value) and str(f) in str(err.value)
    assert "FileNotFoundError" in str(err.value) and "not found" in str(err.value)
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "attempt 1/4" in lines[0] and "not retried" in lines[1]

    with pytest.raises(StorageError, match="download gs://no-such-bucket/x"):
        storage.download("gs://no-such-bucket/x", str(tmp_path / "d" / "x"))
    assert sorted(os.listdir(tmp_path)) == ["x.txt"]


def test_missing_local_source(gcs_emulator, tmp_path):
    log = io.StringIO()
    with pytest.raises(StorageError, match="local path .*/nothing does not exist"):
        storage.upload(str(tmp_path / "nothing"), f"gs://{gcs_emulator.bucket}/x", log=log)
    assert "not retried" in log.getvalue() and "attempt 2/" not in log.getvalue()


def test_missing_object_leaves_nothing(gcs_emulator, tmp_path):
    log = io.StringIO()
    dst = tmp_path / "out" / "model.bin"
    url = f"gs://{gcs_emulator.bucket}/no/such/object"
    with pytest.raises(StorageError, match="not retried") as err:
        storage.download(url, str(dst), log=log, retries=2, backoff_s=0)
    assert url in str(err.value) and str(dst) in str(err.value)
    assert "attempt 2/" not in log.getvalue()
    assert not dst.exists() and os.listdir(tmp_path) == []


def test_transient_errors_are_retried_with_backoff(gcs_emulator, monkeypatch, tmp_path):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{_closed_port()}")
    f = tmp_path / "x.txt"
    f.write_text("x")
    log = io.StringIO()
    t0 = time.monotonic()
    with pytest.raises(StorageError, match="3 attempt.*transient, out of retries"):
        storage.upload(str(f), f"gs://{gcs_emulator.bucket}/x.txt", log=log, retries=2,
                       backoff_s=0.05)
    assert time.monotonic() - t0 < 10  # gcsfs's own retries would take ~30 s per attempt
    text = log.getvalue()
    for n in (1, 2, 3):
        assert f"attempt {n}/3" in text
    assert text.count("retrying in") == 2 and "Cannot connect" in text


def test_interrupted_tree_download_leaves_nothing(gcs_emulator, prefix, tmp_path):
    # A legal object name with a 300-byte component cannot be a local file name: the download
    # really fails midway, after other files of the tree were written.
    src = _tree(tmp_path / "model")
    storage.upload(str(src), f"gs://{gcs_emulator.bucket}/{prefix}")
    storage.upload(str(src / "empty.txt"), f"gs://{gcs_emulator.bucket}/{prefix}/{'z' * 300}")
    dst = _tree(tmp_path / "dl" / "tree", {"old.txt": b"old"})
    log = io.StringIO()
    with pytest.raises(StorageError, match="File name too long"):
        storage.download(f"gs://{gcs_emulator.bucket}/{prefix}", str(dst), log=log)
    assert "not retried" in log.getvalue()
    assert _read_tree(dst) == {"old.txt": b"old"} and os.listdir(dst.parent) == ["tree"]


def test_clashing_object_names_are_refused(gcs_emulator, prefix, tmp_path):
    f = tmp_path / "f"
    f.write_text("data")
    for name in ("a", "a/b", "c"):  # legal in GCS, but "a" cannot be a file and a folder
        storage.upload(str(f), f"gs://{gcs_emulator.bucket}/{prefix}/{name}")
    dst = tmp_path / "dl" / "tree"
    with pytest.raises(StorageError, match=f"{prefix}/a/b cannot be a local file"):
        storage.download(f"gs://{gcs_emulator.bucket}/{prefix}", str(dst))
    assert os.listdir(dst.parent) == []


@pytest.mark.parametrize("kind", ["file", "tree"])
def test_interrupted_rename_keeps_the_old_copy(kind, gcs_emulator, prefix, tmp_path, monkeypatch):
    src = _tree(tmp_path / "model")
    url = f"gs://{gcs_emulator.bucket}/{prefix}"
    storage.upload(str(src), url)
    if kind == "file":
        url += "/config.json"
        dst = tmp_path / "dl" / "obj"
        dst.parent.mkdir()
        dst.write_bytes(b"old content")
    else:
        dst = _tree(tmp_path / "dl" / "obj", {"old.txt": b"old content"})
    before = _read_tree(dst.parent)
    real_replace = os.replace

    def replace(a, b):  # only the rename of the finished download fails, as if we crashed
        if ".obj.part-" in os.fspath(a) and os.fspath(b) == str(dst):
            raise OSError("simulated crash before the rename")
        return real_replace(a, b)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(StorageError, match="simulated crash"):
        storage.download(url, str(dst))
    assert _read_tree(dst.parent) == before and os.listdir(dst.parent) == ["obj"]
    monkeypatch.undo()
    storage.download(url, str(dst))
    if kind == "file":
        assert dst.read_bytes() == TREE["config.json"]
    else:
        assert _read_tree(dst) == TREE and os.listdir(dst.parent) == ["obj"]


@pytest.mark.parametrize("scheme", ["file://", "memory://"])
def test_other_fsspec_protocols(scheme, tmp_path):
    base = f"file://{tmp_path}/remote" if scheme == "file://" else f"memory://b-{uuid.uuid4()}"
    storage.check_url(base + "/m1")
    storage.upload(str(_tree(tmp_path / "model")), base + "/m1")
    storage.upload(str(_tree(tmp_path / "model")), base + "/m1")  # idempotent layout
    storage.download(base + "/m1", str(tmp_path / "back"))
    assert _read_tree(tmp_path / "back") == TREE
    storage.download(base + "/m1/weights/layer0.bin", str(tmp_path / "one"))
    assert (tmp_path / "one").read_bytes() == TREE["weights/layer0.bin"]
    if scheme == "file://":
        assert _read_tree(tmp_path / "remote" / "m1") == TREE


def test_check_url_accepts_gs():
    import gcsfs  # noqa: F401  (the test extra installs it: missing is a failure, not a skip)

    storage.check_url("gs://bucket/x")
    storage.check_url("gs://bucket")


@pytest.mark.parametrize("url, words", [
    ("gs://", "names no bucket"), ("gs:///x", "names no bucket"),
    ("nonsense", "not a storage URL"), ("/abs/path", "not a storage URL"),
    ("GS://b/x", "lowercase"), ("unknownproto://x", "unknown storage protocol"),
    ("file://relative/x", "absolute path"),
])
def test_check_url_rejects(url, words):
    with pytest.raises(DefinitionError, match=words):
        storage.check_url(url)


def test_check_url_without_gcsfs(monkeypatch):
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # `import gcsfs` now raises ImportError
    with pytest.raises(DefinitionError, match=r"pip install 'slurm-experiments\[gcs\]'"):
        storage.check_url("gs://bucket/x")


def test_check_url_without_fsspec(monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(DefinitionError, match="not installed.*fsspec.*run: pip install fsspec"):
        storage.check_url("s3://bucket/x")
    with pytest.raises(DefinitionError, match=r"slurm-experiments\[gcs\]"):
        storage.check_url("gs://bucket/x")


def test_check_url_missing_implementation(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if s3fs were not installed
    with pytest.raises(DefinitionError, match="s3:// is not installed.*s3fs"):
        storage.check_url("s3://bucket/x")


def test_fresh_process_cheap_import_and_emulator_just_works(gcs_emulator, prefix, tmp_path):
    """In a new interpreter (gcsfs not yet imported, GCSFS_* unset) the import is light and
    an emulator upload takes well under gcsfs's 60 s gRPC probe timeout."""
    f = tmp_path / "x"
    f.write_text("x")
    code = ("import sys, experiments.storage as s\n"
            "assert not {'fsspec', 'gcsfs'} & set(sys.modules), 'heavy import'\n"
            f"s.upload({str(f)!r}, 'gs://{gcs_emulator.bucket}/{prefix}/x')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GCSFS_")}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True, timeout=30)
    assert f"{prefix}/x" in gcs_emulator.objects()
