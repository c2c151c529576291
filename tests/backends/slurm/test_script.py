"""The batch script: pinned by a reference file; hostile strings are refused or round-trip."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.backends.slurm.sbatch_options import array_throttle, slurm_options
from experiments.backends.slurm.script import render_script
from experiments.errors import DefinitionError
from experiments.worker.bootstrap import BOOTSTRAP
from tests.support.hostile import HOSTILE
from tests.support.slurm import BAD_CHARS, sbatch_args

REFERENCE = Path(__file__).parent / "reference" / "basic.sbatch"
REQS = {"partition": "gpu", "gpus": "A100:4", "cpus": 8, "time": "24:00:00", "mem": 64,
        "requeue": True, "max_parallel": 10, "comment": "grid #3 of 'olmo'"}
NAME = "olmo.pretrain.l20261129a.t0g0c0"
BASIC = dict(job_name=NAME, options=slurm_options(REQS, where="test"),
             array=f"0-99%{array_throttle(REQS)}", output="/logs/olmo/pretrain/%A_%a.log",
             spec_dir=f"/home/u/.experiments/projects/olmo/specs/{NAME}",
             python="/opt/venv/bin/python", package_dir="/opt/venv/lib/python3.11/site-packages",
             env={"EXPERIMENTS_PROJECT": "olmo", "WANDB_TAGS": "a b,$c"})


def directives(script: str) -> list[str]:
    """The options sbatch reads from a script: ``#SBATCH`` lines up to the first command."""
    out = []
    for line in script.split("\n")[1:]:
        if line.startswith("#SBATCH"):
            out.extend(sbatch_args(line[len("#SBATCH"):]))
        elif line.strip() and not line.startswith("#"):
            break
    return out


def own(output: str = "/l/%A_%a.log", array: str = "0-9") -> list[str]:
    return [f"--job-name={NAME}", f"--array={array}", f"--output={output}", f"--error={output}",
            "--open-mode=append"]


def test_rendering_matches_the_reference_script() -> None:
    assert render_script(**BASIC) == REFERENCE.read_text()


def test_reference_directives_are_exactly_the_intended_ones() -> None:
    assert directives(REFERENCE.read_text()) == [
        "--comment=grid #3 of 'olmo'", "--cpus-per-task=8", "--gpus=A100:4", "--mem=64G",
        "--partition=gpu", "--requeue", "--time=24:00:00", f"--job-name={NAME}",
        "--array=0-99%10", "--output=/logs/olmo/pretrain/%A_%a.log",
        "--error=/logs/olmo/pretrain/%A_%a.log", "--open-mode=append"]


def _render(**changes: object) -> str:
    args: dict = dict(job_name=NAME, options=[], array="0-9", output="/l/%A_%a.log",
                      spec_dir="/specs/x", python="/usr/bin/python3")
    args.update(changes)
    return render_script(**args)


@pytest.fixture(scope="module")
def dumper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in interpreter that prints its argv and environment as JSON."""
    path = tmp_path_factory.mktemp("bin") / "dump"
    path.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    "print(json.dumps({'argv': sys.argv[1:], 'env': dict(os.environ)}))\n")
    path.chmod(0o755)
    return path


def _run(script: str, tmp_path: Path) -> dict:
    path = tmp_path / "job.sbatch"
    path.write_text(script, encoding="utf-8")
    env = {"PATH": os.environ["PATH"], "SLURM_ARRAY_TASK_ID": "7"}
    done = subprocess.run(["bash", str(path)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "restart 0" in done.stderr  # the start banner
    return json.loads(done.stdout)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_requirement_value(value: str) -> None:
    try:
        options = slurm_options({"comment": value, "cpus": 2}, where="test")
    except DefinitionError:
        assert value == "" or any(c in value for c in BAD_CHARS)
        return
    script = _render(options=options)
    assert directives(script) == [f"--comment={value}", "--cpus-per-task=2", *own()]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_output_path(value: str) -> None:
    output = f"/logs/{value}/%A_%a.log"
    try:
        script = _render(output=output)
    except DefinitionError:
        assert any(c in value for c in (*BAD_CHARS, "\\"))
        return
    assert directives(script) == own(output)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_spec_dir_and_env_value_reach_the_worker(value: str, dumper: Path,
                                                         tmp_path: Path) -> None:
    try:
        script = _render(spec_dir=value, python=str(dumper), env={"HOSTILE": value})
    except DefinitionError:
        assert value == "" or any(c in value for c in BAD_CHARS)
        return
    assert directives(script) == own()
    seen = _run(script, tmp_path)
    assert seen["argv"] == ["-m", "experiments.worker", value, "7"]
    assert seen["env"]["HOSTILE"] == value
    script = _render(spec_dir=value, python=str(dumper), package_dir=value)
    assert _run(script, tmp_path)["argv"] == ["-I", "-S", "-c", BOOTSTRAP, value, value, "7"]


@pytest.mark.parametrize("template", ["a'; touch {m}", "$(touch {m})", "`touch {m}`",
                                      "\"; touch {m}; \"", "a\\'; touch {m}; '"])
def test_injections_run_nothing(template: str, dumper: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    value = template.format(m=marker)
    options = slurm_options({"comment": value}, where="test")
    output = f"/l/{value}/%A_%a.log" if "\\" not in value else "/l/%A_%a.log"
    script = _render(options=options, output=output, spec_dir=value, python=str(dumper),
                     env={"V": value})
    seen = _run(script, tmp_path)
    assert seen["argv"][2] == seen["env"]["V"] == value
    assert directives(script) == [f"--comment={value}", *own(output)]
    assert not marker.exists()


@pytest.mark.parametrize("value", [v for v in HOSTILE if v and "\x00" not in v])
def test_env_values_round_trip_even_with_newlines(value: str, dumper: Path,
                                                  tmp_path: Path) -> None:
    script = _render(python=str(dumper), env={"V": value})
    assert directives(script) == own()
    assert _run(script, tmp_path)["env"]["V"] == value


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_python_path_is_one_shell_word(value: str) -> None:
    try:
        script = _render(python=value)
    except DefinitionError:
        assert value == "" or any(c in value for c in BAD_CHARS)
        return
    exec_line = script.rstrip("\n").split("\n")[-1]
    assert shlex.split(exec_line) == ["exec", value, "-m", "experiments.worker", "/specs/x",
                                      "$SLURM_ARRAY_TASK_ID"]


@pytest.mark.parametrize("name", [v for v in HOSTILE if v not in ("-", ".", "..")]
                         + ["a" * 201, "a b", "a/b"])
def test_hostile_job_names_are_refused(name: str) -> None:
    with pytest.raises(DefinitionError, match="job name"):
        _render(job_name=name)


@pytest.mark.parametrize("changes", [
    {"array": "0-9\n#SBATCH --wrap=x"}, {"array": ""}, {"array": "0-9%"},
    {"env": {"A B": "x"}}, {"env": {"1A": "x"}}, {"env": {"A": "a\x00b"}},
    {"options": [("output", "/etc/x")]}, {"options": [("outp", "/etc/x")]},
    {"options": [("dependency", "afterok:1")]}, {"options": [("-o", "/etc/x")]},
    {"options": [("comment", "a\n#SBATCH --wrap=x")]}, {"options": [("mem", "")]},
])
def test_bad_arguments_are_refused(changes: dict) -> None:
    with pytest.raises(DefinitionError):
        _render(**changes)


@pytest.mark.slurm
def test_real_sbatch_reads_hostile_values_back_exactly(slurm_cluster: object,
                                                       tmp_path: Path) -> None:
    """The quoting, and the parser model above, checked against sbatch itself."""
    accepted = [v for v in HOSTILE if v and not any(c in v for c in (*BAD_CHARS, "\\"))]
    ids = []
    try:
        for i, value in enumerate(accepted):
            out = f"/tmp/logs/{value}/%A.log"
            script = _render(job_name=f"hostile-{i}", options=[("comment", value)],
                             output=out, array="0")
            path = tmp_path / f"{i}.sbatch"
            path.write_text(script, encoding="utf-8")
            job = subprocess.run(["sbatch", "--parsable", "--hold", str(path)],
                                 capture_output=True, text=True, timeout=30)
            assert job.returncode == 0, (value, job.stderr)
            ids.append(job.stdout.strip())
            comment = _squeue(ids[-1], "-o", "%k")
            stdout = _squeue(ids[-1], "-O", "STDOUT:|").removesuffix("|")
            assert (comment, stdout) == (value, out)
    finally:
        if ids:
            subprocess.run(["scancel", *ids], timeout=30, check=False)


def _squeue(job_id: str, *fmt: str) -> str:
    res = subprocess.run(["squeue", "-h", "-j", job_id, *fmt], capture_output=True, text=True,
                         timeout=30, check=True)
    return res.stdout.removesuffix("\n")
