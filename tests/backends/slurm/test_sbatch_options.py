"""Requirements → sbatch options: mapping, validation, and quoting for sbatch's own parser."""

from __future__ import annotations

import pytest

from experiments.backends.slurm.sbatch_options import (
    array_throttle,
    quote_directive_value,
    sbatch_options,
)
from experiments.errors import DefinitionError
from tests.support.hostile import HOSTILE
from tests.support.slurm import BAD_CHARS, sbatch_args

WHERE = "artifact PretrainedModel/lr=0.1"



def test_readme_requirements_map_to_sorted_options() -> None:
    reqs = {"partition": "gpu", "gpus": "A100:4", "cpus": 8, "time": "24:00:00", "mem": 64,
            "requeue": True}
    assert sbatch_options(reqs, where=WHERE) == [
        "--cpus-per-task=8", "--gpus=A100:4", "--mem=64G", "--partition=gpu", "--requeue",
        "--time=24:00:00"]


@pytest.mark.parametrize(("reqs", "expected"), [
    ({"mem": 64}, ["--mem=64G"]),
    ({"mem": 1.5}, ["--mem=1536M"]),
    ({"mem": "500M"}, ["--mem=500M"]),
    ({"requeue": False}, ["--no-requeue"]),
    ({"exclusive": True}, ["--exclusive"]),
    ({"exclusive": False}, []),
    ({"gpus_per_node": 2, "mail_type": "END"}, ["--gpus-per-node=2", "--mail-type=END"]),
    ({"gpus": 0}, []),
    ({"nice": -5, "tmp": 0.5}, ["--nice=-5", "--tmp=0.5"]),
    ({"max_parallel": 10, "qos": "high"}, ["--qos=high"]),
    ({"constraint": "a100&ib", "account": "lab"}, ["--account=lab", "--constraint=a100&ib"]),
    ({}, []),
])
def test_mapping(reqs: dict[str, object], expected: list[str]) -> None:
    assert sbatch_options(reqs, where=WHERE) == expected


def test_array_throttle() -> None:
    assert array_throttle({"max_parallel": 64, "cpus": 2}) == 64
    assert array_throttle({"cpus": 2}) is None
    for bad in (0, -1, True, "8", 2.5):
        with pytest.raises(DefinitionError, match="max_parallel"):
            array_throttle({"max_parallel": bad})
        with pytest.raises(DefinitionError, match="max_parallel"):
            sbatch_options({"max_parallel": bad}, where=WHERE)


@pytest.mark.parametrize("key", ["array", "output", "error", "job_name", "job-name", "dependency",
                                 "open_mode", "parsable", "wrap", "test_only", "chdir", "export",
                                 "wait", "hold", "clusters", "version"])
def test_owned_options_are_refused_with_the_reason(key: str) -> None:
    with pytest.raises(DefinitionError) as err:
        sbatch_options({key: "x"}, where=WHERE)
    msg = str(err.value)
    assert WHERE in msg and repr(key) in msg and "set by the framework" in msg


@pytest.mark.parametrize("key", ["outp", "out", "dep", "arr", "job", "job_n", "exp", "open"])
def test_abbreviations_of_owned_options_are_refused(key: str) -> None:
    # sbatch's getopt expands an unambiguous prefix: "--outp=/x" really replaces --output
    with pytest.raises(DefinitionError, match="abbreviates|set by the framework"):
        sbatch_options({key: "/etc/x"}, where=WHERE)


def test_array_hint_names_the_alternative() -> None:
    with pytest.raises(DefinitionError, match="max_parallel"):
        sbatch_options({"array": "0-9"}, where=WHERE)


@pytest.mark.parametrize("key", ["", "1cpus", "-cpus", "cpus=2", "cp us", "a;b", "a\nb", "é"])
def test_bad_keys(key: str) -> None:
    with pytest.raises(DefinitionError, match="not a valid option name"):
        sbatch_options({key: 1}, where=WHERE)


@pytest.mark.parametrize(("key", "value", "match"), [
    ("partition", "", "empty string"),
    ("comment", None, "type NoneType"),
    ("comment", ["a"], "type list"),
    ("cpus", True, "expects a number"),
    ("cpus", 0, ">= 1"),
    ("gpus", -1, ">= 0"),
    ("nodes", 0, ">= 1"),
    ("mem", float("nan"), "not a size"),
    ("tmp", float("inf"), "not a finite number"),
])
def test_bad_values_name_where_key_and_value(key: str, value: object, match: str) -> None:
    with pytest.raises(DefinitionError, match=match) as err:
        sbatch_options({key: value}, where=WHERE)
    assert WHERE in str(err.value) and repr(key) in str(err.value)


@pytest.mark.parametrize("char", BAD_CHARS)
def test_control_characters_are_refused(char: str) -> None:
    with pytest.raises(DefinitionError, match="control character") as err:
        sbatch_options({"comment": f"a{char}#SBATCH --wrap=x"}, where=WHERE)
    assert WHERE in str(err.value) and "'comment'" in str(err.value)


def test_two_keys_for_one_option_are_refused() -> None:
    with pytest.raises(DefinitionError, match="'cpus' and 'cpus_per_task' both set"):
        sbatch_options({"cpus": 2, "cpus_per_task": 4}, where=WHERE)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_refused_or_round_trip(value: str) -> None:
    try:
        (option,) = sbatch_options({"comment": value}, where=WHERE)
    except DefinitionError:
        assert value == "" or any(c in value for c in BAD_CHARS)
        return
    assert option == f"--comment={value}"  # options are returned unquoted
    line = "--comment=" + quote_directive_value(value)
    assert sbatch_args(line) == [f"--comment={value}"]


def test_quoting_leaves_plain_values_alone() -> None:
    for plain in ("gpu", "A100:4", "24:00:00", "/a/b/%A_%a.log", "x,y=z"):
        assert quote_directive_value(plain) == plain
    assert quote_directive_value('a "b" \\c') == '"a \\"b\\" \\\\c"'


@pytest.mark.parametrize(("key", "says"), [
    ("J", "-J is short for --job-name, which is set by the framework"),
    ("D", "-D is short for --chdir, which is set by the framework"),
    ("H", "-H is short for --hold, which is set by the framework"),
    ("p", "-p is short for --partition\\); name the long option: 'partition'"),
    ("part", "--part is not an sbatch option but an abbreviation of --partition"),
    ("mem_per", "abbreviation of --mem-per-cpu, --mem-per-gpu"),
    ("tiem", "--tiem is not an sbatch option \\(did you mean --time\\?\\)"),
    ("gpu_type", "--gpu-type is not an sbatch option"),
])
def test_names_sbatch_does_not_know_are_refused(key: str, says: str) -> None:
    """Issue 25: ``--set J=x`` passed drylaunch and failed only at sbatch."""
    with pytest.raises(DefinitionError, match=says):
        sbatch_options({key: True if key == "H" else "x"}, where=WHERE)


@pytest.mark.parametrize("key", ["cpus", "cpus_per_task", "mem_per_gpu", "gres", "qos",
                                 "constraint", "exclusive", "tres_per_task", "begin"])
def test_long_options_in_full_are_accepted(key: str) -> None:
    assert sbatch_options({key: "1"}, where=WHERE)


@pytest.mark.slurm
def test_every_long_option_of_the_clusters_sbatch_is_known(slurm_cluster: object) -> None:
    import re

    from experiments.backends.slurm import sbatch_names

    text = slurm_cluster.run("sbatch", "--help").stdout  # type: ignore[attr-defined]
    offered = set(re.findall(r"--([a-z][a-z0-9-]*)", text))
    assert len(offered) > 80 and offered <= sbatch_names.LONG, offered - sbatch_names.LONG
    shorts = dict(re.findall(r"^\s+-([A-Za-z]), --([a-z][a-z0-9-]*)", text, re.M))
    assert shorts and all(sbatch_names.SHORT[k] == v for k, v in shorts.items()), shorts
