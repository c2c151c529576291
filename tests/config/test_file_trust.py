"""Config files that run code are trusted only when only trusted accounts can change them
(issue 25): the file, its folder and every folder up to ``/``, symlinks followed and judged.

The suite runs as root; ``expuser2`` (a test user) is the account that should not be able to."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest

from experiments import ConfigError
from experiments.cli import main as cli_main
from experiments.config import settings as cfg


@pytest.fixture
def other(test_users: tuple[str, ...]) -> pwd.struct_passwd:
    return pwd.getpwnam(test_users[1])


@pytest.fixture
def etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder only root can write, holding the site file EXPERIMENTS_SITE_CONFIG names."""
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o755)
    site = folder / "config.json"
    site.write_text(json.dumps({"setup": ["echo site"]}))
    site.chmod(0o644)
    monkeypatch.setenv(cfg.SITE_ENV, str(site))
    return folder


def test_a_site_file_only_root_can_change_is_used(etc: Path) -> None:
    assert cfg.load().setup == ("echo site",)


def test_a_site_file_its_group_can_write_is_refused(etc: Path, other: pwd.struct_passwd) -> None:
    site = etc / "config.json"
    os.chown(site, 0, other.pw_gid)
    site.chmod(0o664)
    with pytest.raises(ConfigError) as err:
        cfg.load()
    assert str(err.value).startswith(
        f"the site config {site} could be changed by every member of the group "
        f"{other.pw_name} (it is group-writable): file {site} is -rw-rw-r-- root:{other.pw_name}.")
    assert f"chmod g-w {site}" in str(err.value)
    assert getattr(err.value, "exit_code", 1) == 2  # the verb does nothing
    os.chown(site, 0, 0)  # root's group: its members are admins
    assert cfg.load().setup == ("echo site",)


def test_a_site_file_in_a_world_writable_folder_is_refused(etc: Path) -> None:
    etc.chmod(0o777)
    with pytest.raises(ConfigError, match=f"by every user .*: folder {etc} is "
                                                         f"drwxrwxrwx root:root.*chmod o-w {etc}"):
        cfg.load()
    etc.chmod(0o1777)  # sticky and root's, like /tmp: nobody can swap root's file
    assert cfg.load().setup == ("echo site",)


def test_a_symlinked_site_file_is_judged_by_where_it_leads(
        etc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    (open_dir / "real.json").write_text("{}")
    link = etc / "link.json"
    link.symlink_to(open_dir / "real.json")
    monkeypatch.setenv(cfg.SITE_ENV, str(link))
    with pytest.raises(ConfigError, match=f"folder {open_dir} is drwxrwxrwx"):
        cfg.load()
    open_dir.chmod(0o755)
    cfg.load()
    hop = open_dir / "hop"  # a symlinked folder on the way is judged the same way
    hop.symlink_to(etc)
    open_dir.chmod(0o777)
    monkeypatch.setenv(cfg.SITE_ENV, str(hop / "config.json"))
    with pytest.raises(ConfigError, match=f"folder {open_dir} is drwxrwxrwx"):
        cfg.load()


def test_a_symlink_owned_by_another_account_is_refused(
        etc: Path, tmp_path: Path, other: pwd.struct_passwd,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    link = sticky / "site.json"  # in a sticky folder its owner may replace it at will
    link.symlink_to(etc / "config.json")
    os.lchown(link, other.pw_uid, other.pw_gid)
    monkeypatch.setenv(cfg.SITE_ENV, str(link))
    with pytest.raises(ConfigError, match=f"by {other.pw_name} \\(its owner\\): "
                                                         f"symlink {link}"):
        cfg.load()


def test_a_site_file_owned_by_its_maintainer_is_used_but_not_a_user_file(
        etc: Path, other: pwd.struct_passwd, exp_home: Path) -> None:
    os.chown(etc / "config.json", other.pw_uid, other.pw_gid)  # the site's maintainer
    assert cfg.load().setup == ("echo site",)
    user = exp_home / "config.json"  # made on first use, by the load above
    os.chown(user, other.pw_uid, other.pw_gid)  # your own config, owned by someone else
    with pytest.raises(ConfigError, match=f"your config {user} could be changed "
                                                         f"by {other.pw_name} \\(its owner\\)"):
        cfg.load()


def test_a_loop_of_symlinks_is_refused(tmp_path: Path) -> None:
    from experiments.config import file_trust

    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(ConfigError, match="too many symlinks"):
        file_trust.check(tmp_path / "a", "the site config", trust_owner=True)


def test_every_verb_that_reads_the_config_exits_2(etc: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    etc.chmod(0o777)
    script = tmp_path / "exp.py"
    script.write_text("from experiments import LocalExecutor\n"
                      f"ex = LocalExecutor(project='p', artifact_path={str(tmp_path)!r} + '/out', "
                      f"code_path={str(tmp_path)!r})\nex.stage('s', [])\n")
    for verb in (["config", "show"], ["--file", str(script), "status"],
                 ["--file", str(script), "launch"]):
        assert cli_main.main(verb) == 2, verb
        assert "could be changed by every user" in capsys.readouterr().err
