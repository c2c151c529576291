"""``--on``'s command line: what goes to the cluster and what stays on the laptop (pure)."""

from __future__ import annotations

import pytest

from experiments.remote.command import UsageError, parse, split_on


def test_on_is_found_anywhere_before_a_double_dash() -> None:
    assert split_on(["status", "--on", "c", "train"]) == ("c", ["status", "train"])
    assert split_on(["--on=c", "status"]) == ("c", ["status"])
    assert split_on(["status", "train"]) is None
    assert split_on(["logs", "--", "--on", "c"]) is None


def test_laptop_paths_are_taken_out_and_the_rest_goes_as_typed() -> None:
    cmd = parse("c", ["--file", "exp.py", "--code-path", "src", "launch", "train",
                      "--artifact-path=/scratch/out", "--set", "time=1:00:00"])
    assert (cmd.verb, cmd.argv) == ("launch", ("launch", "train", "--set", "time=1:00:00"))
    assert (cmd.code_path, cmd.artifact_path) == ("src", "/scratch/out")


def test_report_writes_its_page_here() -> None:
    assert parse("c", ["report", "-o", "r.html", "train"]).output == "r.html"
    assert parse("c", ["report", "--output=x/r.html"]).output == "x/r.html"
    cmd = parse("c", ["report"])
    assert (cmd.output, cmd.argv) == ("report.html", ("report",))


def test_serve_serves_here_and_on_the_clusters_loopback_there() -> None:
    cmd = parse("c", ["serve", "--port", "9000", "--host", "0.0.0.0", "train"])
    assert cmd.serve_at == ("0.0.0.0", 9000)
    assert cmd.argv == ("serve", "train", "--port", "0", "--host", "127.0.0.1")


@pytest.mark.parametrize("args, message", [
    (["status", "--local"], "--local cannot be combined"),
    (["--workers", "2"], "name the verb"),
    (["init", "x.py"], "init writes a starter file on this machine"),
])
def test_what_cannot_run_on_a_cluster_is_refused(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message) as err:
        parse("c", args)
    assert err.value.exit_code == 2


def test_on_without_a_name_is_refused() -> None:
    with pytest.raises(UsageError, match="--on needs the name of a remote"):
        split_on(["status", "--on"])
