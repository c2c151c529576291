"""The site layer (issue 16, item 2): built-in < site file < user file, with provenance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from experiments import ConfigError
from experiments.cli import main as cli_main
from experiments.config import settings as cfg
from experiments.config.layers import Layer, leaves, merge

SITE = {"log_directory": "/scratch/$USER/exp-logs",
        "default_slurm_args": {"gpu": {"time": "12:00:00", "requeue": None},
                               "*": {"account": "proj1"}},
        "setup": ["module load python"], "max_running": 200, "local": {"cpus": 2}}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site file named by EXPERIMENTS_SITE_CONFIG (USER pinned for $USER)."""
    path = tmp_path / "etc" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(SITE))
    path.chmod(0o644)
    monkeypatch.setenv(cfg.SITE_ENV, str(path))
    monkeypatch.setenv("USER", "alice")
    return path


def _user(exp_home: Path, data: object) -> Path:
    exp_home.mkdir(exist_ok=True)
    path = exp_home / "config.json"
    path.write_text(json.dumps(data))
    return path


def test_layers_merge_key_by_key_and_remember_their_source() -> None:
    built = Layer("built-in", None, cfg.DEFAULT_CONFIG)
    site = Layer("site", Path("/etc/s.json"), SITE)
    user = Layer("user", Path("/u.json"), {
        "default_slurm_args": {"gpu": {"cpus": 4, "setup": ["source venv"]}, "cpu": None},
        "setup": ["echo hi"], "local": {"gpus": 1}, "max_running": 8})
    merged = merge([built, site, user])
    assert merged.data["default_slurm_args"] == {
        "gpu": {"time": "12:00:00", "cpus": 4, "setup": ["source venv"]},  # requeue: removed
        "*": {"account": "proj1"}}                                          # cpu: removed
    assert merged.data["setup"] == ["module load python", "echo hi"]
    assert merged.data["local"] == {"cpus": 2, "gpus": 1}
    assert merged.data["max_running"] == 8
    got = {".".join(path): source for path, _value, source in leaves(merged)}
    assert got == {
        "default_slurm_args.*.account": "site /etc/s.json",
        "default_slurm_args.gpu.cpus": "user /u.json",
        "default_slurm_args.gpu.setup": "user /u.json",
        "default_slurm_args.gpu.time": "site /etc/s.json",
        "local.cpus": "site /etc/s.json", "local.gpus": "user /u.json",
        "log_directory": "site /etc/s.json", "max_running": "user /u.json",
        "setup": "site /etc/s.json, then user /u.json"}
    assert cfg.DEFAULT_CONFIG["default_slurm_args"]["gpu"]["requeue"] is True  # not mutated


def test_a_new_user_inherits_the_site(exp_home: Path, site: Path) -> None:
    conf = cfg.load()
    assert json.loads((exp_home / "config.json").read_text()) == {}  # no changes yet
    assert conf.log_directory == Path("/scratch/alice/exp-logs")
    assert conf.max_running_for("any") == 200
    assert conf.local == {"cpus": 2}
    assert conf.resolve_requirements({"partition": "gpu"}) == {
        "account": "proj1", "time": "12:00:00", "cpus": 8, "partition": "gpu"}
    assert conf.resolve_requirements({}) == {"account": "proj1"}  # "*": every partition
    assert conf.setup_for("gpu") == ("module load python",)


def test_the_users_changes_win(exp_home: Path, site: Path) -> None:
    _user(exp_home, {"log_directory": "/home/alice/logs",
                     "default_slurm_args": {"gpu": {"time": "2:00:00", "account": "mine"}}})
    conf = cfg.load()
    assert conf.log_directory == Path("/home/alice/logs")
    assert conf.resolve_requirements({"partition": "gpu", "cpus": 2}) == {
        "account": "mine", "time": "2:00:00", "cpus": 2, "partition": "gpu"}
    merged = cfg.merged()
    assert merged.source("default_slurm_args", "gpu", "time") == f"user {exp_home}/config.json"
    assert merged.source("default_slurm_args", "*", "account") == f"site {site}"


def test_an_unedited_old_first_use_file_lets_the_site_apply(exp_home: Path, site: Path) -> None:
    """Earlier versions wrote the seed defaults on first use; such a file was never edited,
    so it must not override what the admin sets."""
    _user(exp_home, cfg.DEFAULT_CONFIG)
    conf = cfg.load()
    assert conf.log_directory == Path("/scratch/alice/exp-logs")
    assert conf.default_slurm_args["gpu"]["time"] == "12:00:00"
    user = cfg.merged().layers[-1]
    assert user.data == {} and "changes nothing" in user.note


def test_an_old_first_use_file_without_a_site_keeps_the_seed_defaults(exp_home: Path) -> None:
    _user(exp_home, cfg.DEFAULT_CONFIG)
    conf = cfg.load()
    assert conf.default_slurm_args == cfg.DEFAULT_CONFIG["default_slurm_args"]
    assert conf.log_directory == exp_home / "logs"


@pytest.mark.parametrize("data, match", [
    ({"max_running": 0}, "max_running must be a positive int"),
    ({"umask": "000"}, "umask '000' leaves the files we create world-writable"),
    ({"zzz": 1}, "unknown key\\(s\\) zzz"),
    ({"setup": "module load x"}, "setup: setup must be a list of shell lines"),
    ({"local": {"cpu": 2}}, "unknown key local.cpu"),
    ({"log_directory": "/scratch/$NO_SUCH_VAR_X/logs"}, "uses \\$NO_SUCH_VAR_X, which is not set"),
])
def test_errors_in_the_site_file_name_it_and_the_key(site: Path, data: object,
                                                     match: str) -> None:
    site.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=match) as info:
        cfg.load()
    assert str(info.value).startswith(str(site))


def test_site_file_problems_are_config_errors(site: Path, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    site.write_text("{")
    with pytest.raises(ConfigError, match=f"^{site} is not valid JSON"):
        cfg.load()
    site.write_text("{}")
    site.chmod(0o666)
    with pytest.raises(ConfigError, match=f"^the site config {site} could be changed by every"):
        cfg.load()
    monkeypatch.setenv(cfg.SITE_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="EXPERIMENTS_SITE_CONFIG=.*missing.json names no file"):
        cfg.load()
    monkeypatch.setenv(cfg.SITE_ENV, "")  # empty: no site file
    assert cfg.site_path() is None and len(cfg.layers()) == 2


def test_a_relative_site_log_directory_is_taken_from_the_site_folder(site: Path) -> None:
    site.write_text(json.dumps({"log_directory": "logs"}))
    assert cfg.load().log_directory == site.parent / "logs"


def test_config_show_prints_values_and_sources(exp_home: Path, site: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _user(exp_home, {"default_slurm_args": {"gpu": {"cpus": 4}}})
    assert cli_main.main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert f"built-in < site {site} < user {exp_home}/config.json" in out
    rows = {line.split("│")[0].strip(): line for line in out.splitlines() if "│" in line}
    assert '"12:00:00"' in rows["default_slurm_args.gpu.time"]
    assert f"site {site}" in rows["default_slurm_args.gpu.time"]
    assert f"user {exp_home}/config.json" in rows["default_slurm_args.gpu.cpus"]
    assert "built-in" in rows["default_slurm_args.cpu.time"]
    assert "default_slurm_args.gpu.requeue" not in rows  # removed by the site's null
    assert "/scratch/alice/exp-logs" in rows["log_directory"]

    assert cli_main.main(["config", "show", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(x["kind"], x["path"]) for x in data["layers"]] == [
        ("built-in", None), ("site", str(site)), ("user", f"{exp_home}/config.json")]
    assert data["values"]["default_slurm_args"]["gpu"] == {"time": "12:00:00", "cpus": 4}
    assert data["sources"]["default_slurm_args"]["gpu"]["cpus"] == \
        f"user {exp_home}/config.json"
    assert data["effective"]["log_directory"] == "/scratch/alice/exp-logs"


def test_config_show_names_the_file_of_an_error(exp_home: Path, site: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    site.write_text(json.dumps({"default_slurm_args": {"gpu": 5}}))
    assert cli_main.main(["config", "show"]) == 1
    err = capsys.readouterr().err
    assert str(site) in err and "default_slurm_args must map partition names" in err


def test_without_a_site_file_show_says_so(exp_home: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "No site file" in out and cfg.SITE_PATH in out
    assert os.path.exists(exp_home / "config.json")
