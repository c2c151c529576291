"""``_proc.run``: a command dies with the process that ran it, and a big process starts it fast."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from experiments import _proc

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
@pytest.mark.parametrize("call", ["run", "run_watched"])
def test_a_command_dies_with_the_process_that_ran_it(tmp_path: Path, call: str) -> None:
    """A launcher killed while `sbatch` runs must not leave it running (it could still submit);
    ``run_watched`` is how a launch runs sbatch."""
    marker = tmp_path / "child.pid"
    extra = ", tick=lambda s, err: None" if call == "run_watched" else ""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from experiments import _proc
        _proc.{call}(["bash", "-c", "echo $$ > {marker}; exec sleep 60"], timeout_s=120{extra})
    """)
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text().strip()):
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        child = int(marker.read_text())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(child):
            assert time.monotonic() < deadline, "the command outlived the process that ran it"
            time.sleep(0.05)
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_missing_program_raises_file_not_found() -> None:
    with pytest.raises(FileNotFoundError):
        _proc.run(["no-such-program-exp-14"])


def test_the_environment_path_finds_the_program(tmp_path: Path) -> None:
    """Commands resolve through the PATH they are given (wrappers in tests rely on it)."""
    tool = tmp_path / "exp-tool-14"
    tool.write_text("#!/bin/sh\necho wrapped \"$@\"\n")
    tool.chmod(0o755)
    done = _proc.run(["exp-tool-14", "a b"], env={"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert done.ok and done.stdout == "wrapped a b\n"


@pytest.mark.skipif(not _proc._pdeathsig_prefix(), reason="setpriv --pdeathsig is unusable here")
def test_a_watched_command_starts_without_a_fork_of_the_launcher(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``preexec_fn`` makes Python fork the whole launcher (0.3-0.5 s per sbatch with a
    million-artifact plan in memory): sbatch, watched, starts behind setpriv instead, so
    Python can vfork; and it is seen the moment it exits, not a sleep step later."""
    seen: list[dict[str, object]] = []
    real = subprocess.Popen

    class Recording(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            seen.append(dict(kwargs, argv=args[0]))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    done = _proc.run_watched(["echo", "hi"], tick=lambda s, err: None)
    assert done.ok and done.stdout == "hi\n"
    assert seen and seen[0]["preexec_fn"] is None
    assert list(seen[0]["argv"])[:1] == _proc._pdeathsig_prefix()[:1]  # type: ignore[call-overload]
