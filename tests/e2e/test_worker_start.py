"""The worker starts as ``python -I -S`` with the package's folder on sys.path: it must still work
from a virtualenv, from another interpreter prefix (as a conda environment is) and with the
``python`` of config.json, locally and on Slurm."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from experiments.worker import specs
from experiments.worker.bootstrap import worker_argv
from tests.support.cli import run_cli
from tests.support.experiments import done_markers
from tests.support.slurm import cancel_all, wait_until_idle

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, LocalExecutor, Task

@dataclass(frozen=True)
class Probe(Artifact):
    i: int
    def get_requirements(self):
        return {"partition": "cpu", "time": "5:00"}
    def construct(self, builder: Task):
        # the worker is this command's parent: record its command line
        builder.run_command("tr '\\\\0' '\\\\n' < /proc/$PPID/cmdline"
                            " > $EXPERIMENTS_ARTIFACT_DIR/worker.argv")

ex = LocalExecutor(project=os.environ["PROJECT"], artifact_path=os.environ["OUT"],
                   code_path=os.environ["OUT"])
ex.stage("probe", ArtifactSet.from_product(cls=Probe, params={"i": [0, 1]}))
if __name__ == "__main__":
    ex.auto_cli()
'''

OTHER_PYTHON = next((p for p in ("/usr/bin/python3", "/bin/python3")
                     if os.path.exists(p) and os.path.realpath(p)
                     != os.path.realpath(sys.executable)), None)


def _project(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    out = tmp_path / "out"
    out.mkdir()
    return script, out, {"OUT": str(out), "PROJECT": f"w{uuid.uuid4().hex[:8]}"}


def _set_python(python: str) -> None:
    home = Path(os.environ["EXPERIMENTS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps({"python": python}))


def _worker_argvs(out: Path) -> list[list[str]]:
    found = sorted(out.rglob("worker.argv"))
    assert len(found) == 2, found
    return [p.read_text().splitlines() for p in found]


def _venv(tmp_path: Path, base: str = sys.executable) -> Path:
    """A fresh virtualenv of ``base`` that sees none of its site-packages (no pip: the worker
    needs none)."""
    where = tmp_path / "venv"
    subprocess.run([base, "-m", "venv", "--without-pip", str(where)],
                   check=True, capture_output=True, timeout=120)
    return where / "bin" / "python"


def _venv_seeing_ours(tmp_path: Path) -> Path:
    """A fresh virtualenv that sees the packages of the interpreter running the tests.

    ``--system-site-packages`` would not do when the tests run from a virtualenv themselves: the
    nested venv then sees the *base* interpreter's site-packages, not the outer virtualenv's where
    the project and click were installed. A ``.pth`` line adds the running interpreter's
    site-packages instead (with ``site.addsitedir``, so their own ``.pth`` files, e.g. of an
    editable install, are read too)."""
    python = _venv(tmp_path)
    dirs = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE
                                        else [])]
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    lib = subprocess.run([str(python), "-c", where], check=True, capture_output=True, text=True,
                         timeout=60).stdout.strip()
    Path(lib, "outer-site-packages.pth").write_text(
        f"import site; list(map(site.addsitedir, {dirs!r}))\n")
    return python


def test_launch_from_a_virtualenv_runs_workers_with_its_python(tmp_path: Path) -> None:
    script, out, env = _project(tmp_path)
    python = _venv_seeing_ours(tmp_path)
    res = subprocess.run([str(python), str(script), "launch", "--local"], capture_output=True,
                         text=True, timeout=300, env={**os.environ, **env}, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(done_markers(out)) == 2
    for argv in _worker_argvs(out):
        assert argv[0] == str(python) and argv[1:4] == ["-I", "-S", "-c"]


@pytest.mark.skipif(OTHER_PYTHON is None, reason="needs a second interpreter prefix")
def test_config_python_of_another_prefix_builds(tmp_path: Path) -> None:
    """Like a conda environment's interpreter: another prefix, without our package installed."""
    assert OTHER_PYTHON is not None
    script, out, env = _project(tmp_path)
    _set_python(OTHER_PYTHON)
    res = run_cli(script, "launch", "--local", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(done_markers(out)) == 2
    assert all(a[0] == OTHER_PYTHON for a in _worker_argvs(out))


@pytest.mark.skipif(OTHER_PYTHON is None, reason="needs a second interpreter prefix")
def test_config_python_of_an_isolated_venv_builds(tmp_path: Path) -> None:
    """A venv of another base interpreter that sees none of our site-packages."""
    assert OTHER_PYTHON is not None
    script, out, env = _project(tmp_path)
    python = _venv(tmp_path, OTHER_PYTHON)
    _set_python(str(python))
    res = run_cli(script, "launch", "--local", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert all(a[0] == str(python) for a in _worker_argvs(out))


def test_bootstrap_falls_back_to_site_packages(tmp_path: Path) -> None:
    """When the package's folder is not visible, the interpreter's installed package is used."""
    spec = tmp_path / "spec"
    target = tmp_path / "art"
    specs.write_spec(str(spec), specs.SpecHeader("p", "s", "j", str(target), str(tmp_path)),
                     [{"id": "x", "relpath": "A/x", "class": "A", "params": {}, "deps": [],
                       "steps": []}])
    argv = worker_argv(sys.executable, str(spec), 0, package_parent=str(tmp_path / "nowhere"))
    if subprocess.run([sys.executable, "-c", "import experiments"], cwd="/",
                      env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                      capture_output=True).returncode:
        pytest.skip("experiments is not installed in this interpreter's site-packages")
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (target / "A" / "x" / ".done").exists()


@pytest.mark.slurm
@pytest.mark.skipif(OTHER_PYTHON is None, reason="needs a second interpreter prefix")
def test_slurm_tasks_start_with_the_config_python(tmp_path: Path, slurm_cluster: object) -> None:
    assert OTHER_PYTHON is not None
    script, out, env = _project(tmp_path)
    script.write_text(EXPERIMENT.replace("LocalExecutor", "SlurmExecutor"))
    _set_python(OTHER_PYTHON)
    try:
        res = run_cli(script, "launch", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        wait_until_idle(env["PROJECT"], timeout_s=240)
        assert len(done_markers(out)) == 2
        for argv in _worker_argvs(out):
            assert argv[0] == OTHER_PYTHON and argv[1:3] == ["-I", "-S"]
    finally:
        cancel_all(env["PROJECT"])
