"""Provenance, stale results, invalidate and snapshot gc, end to end on the local backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.cli import run_cli

EXPERIMENT = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, LocalExecutor, Task

SCALE = float(os.environ.get("DEFAULT_SCALE", "1.0"))
SLOW = os.environ.get("SLOW_I", "")

@dataclass(frozen=True)
class Pre(Artifact):
    i: int
    scale: float = SCALE
    def construct(self, builder: Task):
        wait = "sleep 60; " if str(self.i) == SLOW else ""
        builder.run_command(wait + f'echo {self.i} {self.scale} '
                            '> "$EXPERIMENTS_ARTIFACT_DIR/out.txt"'
                            ' && pwd > "$EXPERIMENTS_ARTIFACT_DIR/cwd.txt"'
                            ' && cat version.txt > "$EXPERIMENTS_ARTIFACT_DIR/version.txt"')

@dataclass(frozen=True)
class Fine(Artifact):
    base: Pre
    name: str
    def construct(self, builder: Task):
        builder.run_command(f'cat "$EXPERIMENTS_ARTIFACT_PATH/{self.base.relpath}/out.txt" '
                            '> "$EXPERIMENTS_ARTIFACT_DIR/in.txt"')

pre = ArtifactSet.from_product(cls=Pre, params={"i": [0, 1, 2]})
fine = ArtifactSet.join_product(pre, ["a", "b"]).map(lambda m, n: Fine(base=m, name=n))
ex = LocalExecutor(project=os.environ.get("PROJECT", "prov"), artifact_path=os.environ["OUT"],
                   code_path=os.environ["CODE"], workers=2)
ex.stage("pretrain", pre)
ex.stage("finetune", fine)
if __name__ == "__main__":
    ex.auto_cli()
'''


def _setup(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    code = tmp_path / "code"
    code.mkdir()
    script = code / "exp.py"
    script.write_text(EXPERIMENT)
    (code / "version.txt").write_text("v1\n")
    out = tmp_path / "out"
    out.mkdir()
    return script, {"OUT": str(out), "CODE": str(code)}, out


def _ok(res: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that worked; ``status`` answers with the documented exit codes
    (0 all built, 1 something failed or is not built, 3 something is queued or running, 5 all
    built but some stale)."""
    allowed = (0, 1, 3, 5) if "status" in res.args else (0,)
    assert res.returncode in allowed, res.stdout + res.stderr
    return res.stdout


def _build_ids(out: Path) -> dict[str, str]:
    return {str(p.parent.relative_to(out)): json.loads(p.read_text())["build_id"]
            for p in out.rglob(".done")}


def _aside(out: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(out)) for p in out.rglob(".done.invalidated-*"))


def _meta(out: Path, rel: str) -> dict[str, object]:
    return json.loads((out / rel / ".artifact.json").read_text())  # type: ignore[no-any-return]


def _stale_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("stale ")]


def test_provenance_names_snapshot_params_and_dependency_builds(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path)
    _ok(run_cli(script, "launch", env=env))
    ids = _build_ids(out)
    assert len(ids) == 9
    pre = next(r for r in ids if r.startswith("Pre/i=0"))
    fine = next(r for r in ids if r.startswith("Fine/") and _meta(out, r)["params"]["base"][
        "relpath"] == pre and _meta(out, r)["params"]["name"] == "a")  # type: ignore[index]
    meta = _meta(out, pre)
    assert meta["params"] == {"i": 0, "scale": 1.0}  # the default is recorded too
    prov = meta["provenance"]
    assert isinstance(prov, dict)
    assert prov["build_id"] == ids[pre]
    snap = prov["code"]["snapshot"]
    home = Path(os.environ["EXPERIMENTS_HOME"])
    assert snap and prov["code"]["path"] == str(home / "snapshots" / snap / "code")
    assert prov["code"]["live_path"] == env["CODE"]
    assert (out / pre / "cwd.txt").read_text().strip() == prov["code"]["path"]
    assert not any((home / "snapshots" / snap / "code").rglob(".done"))  # root never copied
    assert prov["python"]["executable"] and prov["host"] and prov["attempt"] == 1
    assert _meta(out, fine)["provenance"]["dependencies"] == {pre: ids[pre]}  # type: ignore[index]


def test_changed_default_is_stale_and_rebuilt_with_its_dependents(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path)
    _ok(run_cli(script, "launch", env=env))
    before = _build_ids(out)
    env2 = {**env, "DEFAULT_SCALE": "2.0"}
    status = _ok(run_cli(script, "status", env=env2))
    stale = _stale_lines(status)
    assert len(stale) == 9, status
    assert run_cli(script, "status", env=env2).returncode == 5  # all built, but stale
    assert sum("scale was 1.0, now 2.0" in s for s in stale) == 3
    assert sum("is stale" in s for s in stale) == 6  # Fine, through its stale dependency
    assert all(" [pretrain]: " in s or " [finetune]: " in s for s in stale)  # stage shown
    assert len(_stale_lines(_ok(run_cli(script, "drylaunch", env=env2)))) == 9
    assert "Nothing to launch" in _ok(run_cli(script, "launch", env=env2))
    assert _ok(run_cli(script, "status", env=env)).count("stale") == 0  # the old default

    _ok(run_cli(script, "launch", "--rebuild-stale", env=env2))
    after = _build_ids(out)
    assert len(after) == 9 and all(after[r] != before[r] for r in before)
    assert len(_aside(out)) == 9  # every marker moved aside, none deleted
    assert all((out / r / "out.txt").exists() for r in after if r.startswith("Pre/"))
    assert "2.0" in next((out / r / "out.txt").read_text() for r in after if r.startswith("Pre"))
    assert _stale_lines(_ok(run_cli(script, "status", env=env2))) == []


def test_rebuilt_dependency_makes_exactly_its_dependents_stale(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path)
    _ok(run_cli(script, "launch", env=env))
    before = _build_ids(out)
    _ok(run_cli(script, "invalidate", "pretrain", "--where", "i=1", "--yes", env=env))
    _ok(run_cli(script, "launch", "pretrain", env=env))
    status = _ok(run_cli(script, "status", env=env))
    stale = _stale_lines(status)
    assert len(stale) == 2, status
    assert all("Fine/" in s and "was rebuilt after it" in s for s in stale)
    rebuilt_pre = next(r for r in before if r.startswith("Pre/i=1"))
    dependents = {r for r in before if r.startswith("Fine/")
                  and _meta(out, r)["params"]["base"]["relpath"] == rebuilt_pre}  # type: ignore[index]
    assert len(dependents) == 2

    _ok(run_cli(script, "launch", "--rebuild-stale", env=env))
    after = _build_ids(out)
    changed = {r for r in before if after[r] != before[r]}
    assert changed == dependents | {rebuilt_pre}
    assert _stale_lines(_ok(run_cli(script, "status", env=env))) == []


def test_invalidate_where_moves_exactly_the_chosen_markers(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path)
    _ok(run_cli(script, "launch", env=env))
    built = _build_ids(out)
    fine = {r: _meta(out, r)["params"] for r in built if r.startswith("Fine/")}

    # no terminal and no --yes: refused, nothing moved
    res = subprocess.run([sys.executable, str(script), "invalidate", "finetune", "--where",
                          "name=a"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                         env={**os.environ, **env}, timeout=120)
    assert res.returncode == 2 and "--yes" in res.stderr, res.stdout + res.stderr
    assert _aside(out) == []

    # a string value and a nested dotted path, both required
    _ok(run_cli(script, "invalidate", "finetune", "--where", "name=a", "--where", "base.i=2",
                "--yes", env=env))
    want = {r for r, p in fine.items() if p["name"] == "a" and "i=2" in p["base"]["relpath"]}
    assert len(want) == 1 and _aside(out) == sorted(want)

    # an int value (JSON) with --downstream: the Pre and both of its Fine dependents
    _ok(run_cli(script, "invalidate", "pretrain", "--where", "i=0", "--downstream", "--yes",
                env=env))
    pre0 = {r for r in built if r.startswith("Pre/i=0")}
    fine0 = {r for r, p in fine.items() if "i=0" in p["base"]["relpath"]}
    assert _aside(out) == sorted(want | pre0 | fine0)
    assert len(_build_ids(out)) == 9 - 4

    res = run_cli(script, "invalidate", "pretrain", "--where", "lr=1", "--yes", env=env)
    assert res.returncode == 2 and "'lr'" in res.stderr  # a mistyped key: usage (issue 24)


def _wait_running(art: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if json.loads((art / ".status.json").read_text())["state"] == "running":
                return
        except (OSError, ValueError):
            pass
        assert time.monotonic() < deadline, f"{art} never started"
        time.sleep(0.2)


def test_live_job_blocks_invalidate_and_keeps_its_snapshot_from_gc(tmp_path: Path) -> None:
    script, env, out = _setup(tmp_path)
    _ok(run_cli(script, "launch", "pretrain", env=env))  # Pre i=0..2 built, snapshot S1
    home = Path(os.environ["EXPERIMENTS_HOME"])
    first = {p.name for p in (home / "snapshots").iterdir()}
    (Path(env["CODE"]) / "version.txt").write_text("v2\n")  # new content: snapshot S2
    slow = {**env, "SLOW_I": "1"}
    _ok(run_cli(script, "invalidate", "pretrain", "--where", "i=1", "--yes", env=slow))
    proc = subprocess.Popen([sys.executable, str(script), "launch", "pretrain"],
                            env={**os.environ, **slow}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        pre1 = next(p.parent for p in out.rglob(".done.invalidated-*"))
        _wait_running(pre1)
        second = {p.name for p in (home / "snapshots").iterdir()} - first
        assert len(second) == 1

        # invalidate refuses what a live job holds, and changes nothing
        res = run_cli(script, "invalidate", "pretrain", "--yes", env=env)
        assert res.returncode == 1 and "live job" in res.stderr, res.stdout + res.stderr
        assert len(_build_ids(out)) == 2

        # gc removes the idle snapshot, never the one the live job runs in
        old = time.time() - 10 * 86400
        for name in first | second:
            os.utime(home / "snapshots" / name, (old, old))
        res = run_cli(script, "gc", "--older-than", "1", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        left = {p.name for p in (home / "snapshots").iterdir()}
        assert left == second, res.stdout
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def test_gc_keeps_a_live_local_jobs_snapshot_when_another_project_reuses_its_job_id(
        tmp_path: Path) -> None:
    """Local job ids (L1, L2…) are per project: another project's ended L2 must not hide that
    this project's L2 is running."""
    script, env, out = _setup(tmp_path)
    other = {**env, "PROJECT": "zother", "OUT": str(tmp_path / "other-out")}
    _ok(run_cli(script, "launch", "pretrain", env=other))  # zother: L1
    _ok(run_cli(script, "invalidate", "pretrain", "--yes", env=other))
    _ok(run_cli(script, "launch", "pretrain", env=other))  # zother: L2, ended
    _ok(run_cli(script, "launch", "pretrain", env=env))  # prov: L1, ended
    home = Path(os.environ["EXPERIMENTS_HOME"])
    idle = {p.name for p in (home / "snapshots").iterdir()}
    (Path(env["CODE"]) / "version.txt").write_text("v2\n")  # prov's next launch: new snapshot
    slow = {**env, "SLOW_I": "1"}
    _ok(run_cli(script, "invalidate", "pretrain", "--where", "i=1", "--yes", env=slow))
    proc = subprocess.Popen([sys.executable, str(script), "launch", "pretrain"],  # prov: L2
                            env={**os.environ, **slow}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_running(next(p.parent for p in out.rglob(".done.invalidated-*")))
        live = {p.name for p in (home / "snapshots").iterdir()} - idle
        assert len(live) == 1
        old = time.time() - 10 * 86400
        for p in (home / "snapshots").iterdir():
            os.utime(p, (old, old))
        res = run_cli(script, "gc", "--older-than", "1", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        assert {p.name for p in (home / "snapshots").iterdir()} == live, res.stdout
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
