"""The ``remotes`` config key: validated per file, merged per remote, shown by config show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.cli.main import main
from experiments.config import settings
from experiments.config.remotes import Remote, find
from experiments.errors import ConfigError

GOOD = {"ssh": "me@login.example.org", "python": "/opt/env/bin/python",
        "code_root": "/home/me/code/", "artifact_path": "/scratch/me/out"}


def _write(home: Path, data: object) -> Path:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = home / "config.json"
    path.write_text(json.dumps(data))
    return path


def test_a_remote_is_read_from_the_users_config(experiments_home: Path) -> None:
    _write(experiments_home, {"remotes": {"hpc": GOOD}})
    conf = settings.load()
    assert find(conf.remotes, "hpc", conf.path) == Remote(
        "hpc", "me@login.example.org", "/opt/env/bin/python", "/home/me/code",
        "/scratch/me/out")


@pytest.mark.parametrize("remotes, message", [
    ([], "remotes must map names to clusters"),
    ({"hpc": {**GOOD, "port": 22}}, r"remotes.hpc: unknown key\(s\) port"),
    ({"hpc": {k: v for k, v in GOOD.items() if k != "code_root"}},
     "remotes.hpc: missing code_root"),
    ({"hpc": {**GOOD, "ssh": "-oProxyCommand=evil"}}, "remotes.hpc.ssh must be"),
    ({"hpc": {**GOOD, "ssh": "two words"}}, "remotes.hpc.ssh must be"),
    ({"hpc": {**GOOD, "python": "python3"}}, "remotes.hpc.python must be"),
    ({"a b": GOOD}, "is not a usable name"),
])
def test_a_bad_remote_names_the_file_and_the_key(experiments_home: Path, remotes: object,
                                                 message: str) -> None:
    path = _write(experiments_home, {"remotes": remotes})
    with pytest.raises(ConfigError, match=message) as err:
        settings.load()
    assert str(err.value).startswith(str(path))


def test_an_unknown_remote_lists_the_known_ones(experiments_home: Path) -> None:
    _write(experiments_home, {"remotes": {"hpc": GOOD}})
    conf = settings.load()
    with pytest.raises(ConfigError, match=r"no remote named 'gpu' in config.json \(known: hpc\)"):
        find(conf.remotes, "gpu", conf.path)


def test_site_and_user_remotes_merge_by_name_and_config_show_lists_them(
        experiments_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"remotes": {"hpc": GOOD, "old": GOOD}}))
    monkeypatch.setenv("EXPERIMENTS_SITE_CONFIG", str(site))
    _write(experiments_home, {"remotes": {"old": {**GOOD, "ssh": "newhost"}}})
    conf = settings.load()
    assert conf.remotes["hpc"].ssh == GOOD["ssh"] and conf.remotes["old"].ssh == "newhost"
    assert main(["config", "show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["values"]["remotes"]["old"]["ssh"] == "newhost"
    assert shown["sources"]["remotes"]["hpc"].startswith("site")
    assert shown["sources"]["remotes"]["old"].startswith("user")
