"""Sharing a project name or an artifact root: whose jobs, whose markers, which paths.

* (two experiment files using one project name, each cancelling only its own jobs: that is our
  records' logic, tested on FakeBackend in test_shared_roots_fake.py);
* a ``.done`` planted by another account counts as built only when that account is trusted
  (config keys ``trusted_users`` / ``trusted_groups``), for the planner and for the worker;
* the worker refuses to write outside the artifact's folder whatever its spec says.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

from experiments.worker import specs
from tests.support.cli import run_cli
from tests.support.experiments import done_markers

LOCAL_ONE = '''
import os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, LocalExecutor, Task

@dataclass(frozen=True)
class A(Artifact):
    i: int
    def construct(self, builder: Task):
        builder.run_command("echo " + self.relpath + " >> " + os.environ["RUNS"])

ex = LocalExecutor(project="shared", artifact_path=os.environ["OUT"], code_path=os.environ["OUT"])
ex.stage("a", ArtifactSet.from_product(cls=A, params={"i": [0, 1]}))
if __name__ == "__main__":
    ex.auto_cli()
'''


def test_a_planted_done_marker_counts_only_from_trusted_accounts(
        tmp_path: Path, test_users: tuple[str, ...], experiments_home: Path) -> None:
    script = tmp_path / "exp.py"
    script.write_text(LOCAL_ONE)
    out, runs = tmp_path / "out", tmp_path / "runs"
    env = {"OUT": str(out), "RUNS": str(runs)}
    assert run_cli(script, "launch", env=env).returncode == 0
    assert len(runs.read_text().splitlines()) == 2
    stranger = pwd.getpwnam(test_users[0])
    planted = done_markers(out)[0]
    os.chown(planted, stranger.pw_uid, stranger.pw_gid)  # as if that account had planted it
    status = run_cli(script, "status", env=env)
    row = next(ln for ln in status.stdout.splitlines() if ln.startswith("│ a "))
    assert row.split("│")[2].strip() == "1", status.stdout  # the planted marker is not built
    again = run_cli(script, "launch", env=env)  # the planner and the worker both rebuild it
    assert again.returncode == 0, again.stderr
    assert len(runs.read_text().splitlines()) == 3
    assert planted.stat().st_uid == os.geteuid()
    # trusted by the configuration: the same planted marker counts as built
    config = experiments_home / "config.json"
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "trusted_users": [test_users[0]]}))
    os.chown(planted, stranger.pw_uid, stranger.pw_gid)
    trusted = run_cli(script, "launch", env=env)
    assert trusted.returncode == 0 and "Nothing to launch" in trusted.stdout, trusted.stdout
    assert len(runs.read_text().splitlines()) == 3


def test_the_worker_refuses_to_write_outside_the_artifact_folder(tmp_path: Path) -> None:
    root, code = tmp_path / "artifacts", tmp_path / "code"
    code.mkdir()
    header = specs.SpecHeader("p", "s", "j", str(root), str(code), umask=0o077)
    escape = str(tmp_path / "escaped.txt")  # an edited spec: an absolute path elsewhere
    step = {"kind": "create_file", "path": escape,
            "content_b64": base64.b64encode(b"x").decode()}
    task = {"id": "i", "relpath": "A/x", "class": "A", "params": {}, "deps": [], "steps": [step]}
    spec_dir = str(tmp_path / "spec")
    specs.write_spec(spec_dir, header, [task])
    res = subprocess.run([sys.executable, "-m", "experiments.worker", spec_dir, "0"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "outside the artifact's folder" in res.stdout, res.stdout
    assert not Path(escape).exists() and not (root / "A" / "x" / ".done").exists()
