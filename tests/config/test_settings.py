"""config.json: first-run default, EXPERIMENTS_HOME, validation, requirement merging."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from experiments import ConfigError
from experiments.config import settings as cfg

SEED_README = Path(__file__).resolve().parents[1] / "data" / "README-seed.md"  # the spec, copied
# The block from the seed README, as the default config must be.
SEED_CONFIG = """
{
  "log_directory": "~/.experiments/logs",
  "default_slurm_args": {
    "gpu": {
      "time": "24:00:00",
      "cpus": 8,
      "requeue": true
    },
    "cpu": {
      "time": "4:00:00",
      "cpus": 1
    }
  }
}
"""


def test_seed_block_matches_readme() -> None:
    blocks = re.findall(r"```json\n(.*?)```", SEED_README.read_text(), re.S)
    assert json.loads(blocks[0]) == json.loads(SEED_CONFIG)


def test_first_load_gives_the_seed_defaults_and_a_file_of_no_changes(exp_home: Path) -> None:
    """The seed's defaults hold with no site file; the user's file only holds their changes
    (none yet), so a site file would apply (issue 16, item 2)."""
    assert not exp_home.exists()
    conf = cfg.load()
    path = exp_home / "config.json"
    assert conf.path == path
    assert json.loads(path.read_text()) == {}
    assert cfg.merged().data == json.loads(SEED_CONFIG)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert conf.log_directory == exp_home / "logs"
    assert conf.default_slurm_args["gpu"] == {"time": "24:00:00", "cpus": 8, "requeue": True}
    assert conf.default_slurm_args["cpu"] == {"time": "4:00:00", "cpus": 1}
    assert conf.default_partition is None
    assert conf.umask == cfg.default_umask()


@pytest.mark.parametrize(("users", "ours"), [(0o022, 0o022), (0o000, 0o002), (0o027, 0o027),
                                             (0o277, 0o077)])
def test_default_umask_follows_the_users_but_never_world_writable(users: int, ours: int) -> None:
    before = os.umask(users)
    try:
        assert cfg.default_umask() == ours
        assert os.umask(users) == users  # reading it left it as it was
    finally:
        os.umask(before)


def test_existing_config_is_not_overwritten(exp_home: Path) -> None:
    exp_home.mkdir()
    (exp_home / "config.json").write_text('{"log_directory": "/var/logs/x"}')
    conf = cfg.load()
    assert conf.log_directory == Path("/var/logs/x")
    # keys it leaves out come from the layers below it (here the built-in defaults)
    assert conf.default_slurm_args == json.loads(SEED_CONFIG)["default_slurm_args"]
    assert json.loads((exp_home / "config.json").read_text()) == {"log_directory": "/var/logs/x"}


def test_home_relocation_and_path_mapping(exp_home: Path, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    assert cfg.home() == exp_home
    assert cfg.expand_path("~/.experiments/logs") == exp_home / "logs"
    assert cfg.expand_path("~/.experiments") == exp_home
    assert cfg.expand_path("/abs/logs") == Path("/abs/logs")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert cfg.expand_path("~/.experimentsX/logs") == tmp_path / "user" / ".experimentsX/logs"
    monkeypatch.delenv("EXPERIMENTS_HOME")
    assert cfg.home() == tmp_path / "user" / ".experiments"


def _write(exp_home: Path, text: str) -> Path:
    exp_home.mkdir(exist_ok=True)
    path = exp_home / "config.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text", ["{", "", "not json", '{"log_directory": }', "[1,"])
def test_invalid_json_names_the_file(exp_home: Path, text: str) -> None:
    path = _write(exp_home, text)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))} is not valid JSON"):
        cfg.load()
    assert path.read_text() == text  # never reset


def test_duplicate_keys_rejected(exp_home: Path) -> None:
    _write(exp_home, '{"log_directory": "/a", "log_directory": "/b"}')
    with pytest.raises(ConfigError, match=r"duplicate key 'log_directory'"):
        cfg.load()
    _write(exp_home, '{"default_slurm_args": {"gpu": {"cpus": 1, "cpus": 2}}}')
    with pytest.raises(ConfigError, match=r"duplicate key 'cpus'"):
        cfg.load()


def test_unknown_key_lists_valid_keys(exp_home: Path) -> None:
    path = _write(exp_home, '{"log_dir": "/a", "zzz": 1}')
    with pytest.raises(ConfigError) as info:
        cfg.load()
    msg = str(info.value)
    assert str(path) in msg
    assert "unknown key(s) log_dir, zzz" in msg
    assert ("valid keys are code_snapshots, default_partition, default_slurm_args, escalation, "
            "local, log_directory, max_running, python, relays, remotes, setup, "
            "snapshot_excludes, "
            "snapshot_max_mb, stale_on_code_change, submit_limit_check_above, trusted_groups, "
            "trusted_users, umask") in msg


@pytest.mark.parametrize("value, project, expected", [
    (None, "p", None), (8, "p", 8), ({"p": 4, "q": 64}, "p", 4), ({"q": 64}, "p", None)])
def test_max_running_is_an_int_or_per_project(exp_home: Path, value: object, project: str,
                                               expected: int | None) -> None:
    _write(exp_home, json.dumps({} if value is None else {"max_running": value}))
    assert cfg.load().max_running_for(project) == expected


@pytest.mark.parametrize("value", [0, -1, True, "8", 2.5, {"p": 0}, {"p": "8"}, [8]])
def test_bad_max_running_is_refused(exp_home: Path, value: object) -> None:
    _write(exp_home, json.dumps({"max_running": value}))
    with pytest.raises(ConfigError, match="max_running must be a positive int"):
        cfg.load()


def test_yaml_python_tag_is_rejected_and_not_executed(exp_home: Path, tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    _write(exp_home, f"!!python/object/apply:os.system ['touch {canary}']\n")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        cfg.load()
    _write(exp_home, f"log_directory: !!python/object/apply:os.system ['touch {canary}']\n")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        cfg.load()
    # inside a JSON string it is just text
    _write(exp_home, json.dumps({"log_directory": f"!!python/object/apply:os.system "
                                                  f"['touch {canary}']"}))
    conf = cfg.load()  # a relative path: resolved against the config's folder
    assert str(conf.log_directory).startswith(str(exp_home / "!!python"))
    assert not canary.exists()


@pytest.mark.parametrize("data,match", [
    ([], "must hold a JSON object"),
    ({"log_directory": 5}, "log_directory must be a path string"),
    ({"log_directory": ""}, "log_directory must be a path string"),
    ({"log_directory": "a\nb"}, "log_directory must be a path string"),
    ({"default_slurm_args": []}, "default_slurm_args must map partition names"),
    ({"default_slurm_args": {"gpu": 5}}, "default_slurm_args must map partition names"),
    ({"default_partition": 5}, "default_partition must be a string"),
    ({"python": "python3"}, "python must be an absolute path"),
    ({"umask": "999"}, "umask must be an octal string"),
    ({"umask": "777"}, "umask must be an octal string"),  # would lock the owner out
    ({"umask": "abc"}, "umask must be an octal string"),
    ({"umask": "000"}, r"umask '000' leaves the files we create world-writable; use '027'"),
    ({"umask": "020"}, r"umask '020' leaves .* world-writable; .*'027'.* or '077'"),
    ({"umask": "075"}, r"umask '075' leaves .* world-writable"),
])
def test_bad_values_rejected_naming_file(exp_home: Path, data: object, match: str) -> None:
    path = _write(exp_home, json.dumps(data))
    with pytest.raises(ConfigError, match=match) as info:
        cfg.load()
    assert str(path) in str(info.value)


def test_optional_keys_accepted(exp_home: Path) -> None:
    _write(exp_home, json.dumps({"default_partition": "cpu", "umask": "027",
                                 "python": "/usr/bin/python3",
                                 "default_slurm_args": {"cpu": {"cpus": 2}}}))
    conf = cfg.load()
    assert (conf.default_partition, conf.umask, conf.python) == ("cpu", 0o027, "/usr/bin/python3")


def test_non_utf8_config_is_a_config_error(exp_home: Path) -> None:
    exp_home.mkdir()
    (exp_home / "config.json").write_bytes(b'{"log_directory": "\xff\xfe"}')
    with pytest.raises(ConfigError, match="config.json"):
        cfg.load()


# -- merging --------------------------------------------------------------------------------
def test_resolve_requirements_artifact_wins(exp_home: Path) -> None:
    conf = cfg.load()
    assert conf.resolve_requirements({"partition": "gpu", "gpus": "A100:4", "cpus": 16}) == {
        "time": "24:00:00", "cpus": 16, "requeue": True, "partition": "gpu", "gpus": "A100:4"}
    assert conf.resolve_requirements({"partition": "cpu"}) == {
        "time": "4:00:00", "cpus": 1, "partition": "cpu"}
    assert conf.resolve_requirements({"partition": "other", "time": "1:00"}) == {
        "partition": "other", "time": "1:00"}
    assert conf.resolve_requirements({}) == {}


def test_resolve_requirements_default_partition(exp_home: Path) -> None:
    _write(exp_home, json.dumps({**json.loads(SEED_CONFIG), "default_partition": "gpu"}))
    conf = cfg.load()
    assert conf.resolve_requirements({}) == {"time": "24:00:00", "cpus": 8, "requeue": True,
                                             "partition": "gpu"}
    assert conf.resolve_requirements({"partition": "cpu", "time": "0:10:00"}) == {
        "time": "0:10:00", "cpus": 1, "partition": "cpu"}


# -- issue 11, item 9 -------------------------------------------------------------------------
@pytest.mark.parametrize("mask", ["022", "027", "002", "077"])
def test_masks_that_keep_files_from_the_world_are_accepted(exp_home: Path, mask: str) -> None:
    _write(exp_home, json.dumps({"umask": mask}))
    assert cfg.load().umask == int(mask, 8)


@pytest.mark.parametrize("value, expected", [
    ("logs", "logs"), ("./a/b/../c", "a/c"), ("../shared-logs", "../shared-logs"),
])
def test_relative_log_directory_is_resolved_against_the_config_folder(
        exp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str,
        expected: str) -> None:
    _write(exp_home, json.dumps({"log_directory": value}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # launch may run anywhere: the logs must not follow it
    conf = cfg.load()
    assert conf.log_directory.is_absolute()
    assert conf.log_directory == Path(os.path.normpath(exp_home / expected))


def test_relative_experiments_home_becomes_absolute(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EXPERIMENTS_HOME", "rel-home")
    conf = cfg.load()
    assert cfg.home() == tmp_path / "rel-home"
    assert conf.path == tmp_path / "rel-home" / "config.json"
    assert conf.log_directory == tmp_path / "rel-home" / "logs"


def test_experiments_home_that_is_a_file_is_one_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    afile = tmp_path / "x"
    afile.write_text("not a folder")
    monkeypatch.setenv("EXPERIMENTS_HOME", str(afile))
    message = f"EXPERIMENTS_HOME={afile} is a file, not a folder; point it at a folder"
    with pytest.raises(ConfigError) as info:
        cfg.home()
    assert str(info.value) == message
    with pytest.raises(ConfigError) as info:
        cfg.load()
    assert str(info.value) == message
    assert afile.read_text() == "not a folder"


def test_experiments_home_under_a_file_is_one_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "x").write_text("")
    monkeypatch.setenv("EXPERIMENTS_HOME", str(tmp_path / "x" / "home"))
    with pytest.raises(ConfigError, match=r"^EXPERIMENTS_HOME=.*/x/home cannot be used \(Not a "
                                          r"directory\); point it at a folder$"):
        cfg.load()


@pytest.mark.parametrize("mask, mode", [(0o077, 0o600), (0o027, 0o640), (0o022, 0o644),
                                        (0o002, 0o644), (0o000, 0o644)])
def test_lock_files_follow_the_mask_and_are_never_group_or_world_writable(
        mask: int, mode: int) -> None:
    assert cfg.lock_mode(mask) == mode


def test_submit_limit_check_above_is_a_count_of_tasks(tmp_path: Path) -> None:
    """Issue 26: launches above it read the submit limits; anything but a count is refused."""
    from experiments.config.settings import SUBMIT_LIMIT_CHECK_ABOVE, validate
    assert validate({}, tmp_path / "c.json").submit_limit_check_above == SUBMIT_LIMIT_CHECK_ABOVE
    assert validate({"submit_limit_check_above": 0}, tmp_path / "c.json"
                    ).submit_limit_check_above == 0
    for bad in (-1, "100", True, 1.5):
        with pytest.raises(ConfigError, match="submit_limit_check_above must be a whole number"):
            validate({"submit_limit_check_above": bad}, tmp_path / "c.json")


def test_relays_is_true_or_false_and_on_by_default(tmp_path: Path) -> None:
    validate = cfg.validate
    assert validate({}, tmp_path / "c.json").relays is True
    assert validate({"relays": False}, tmp_path / "c.json").relays is False
    with pytest.raises(ConfigError, match=r"c.json: relays must be true or false, got 'no'"):
        validate({"relays": "no"}, tmp_path / "c.json")
