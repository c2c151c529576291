"""``table`` on the real Slurm test cluster: states from one query, none when all is built."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.e2e.helpers import run_cli
from tests.e2e.slurm_helpers import cancel_all, count_calls, wait_until_idle, wrap_commands
from tests.e2e.test_slurm_e2e import EXPERIMENT

pytestmark = pytest.mark.slurm


def test_table_on_slurm(tmp_path: Path, slurm_cluster: object) -> None:
    script = tmp_path / "exp.py"
    script.write_text(EXPERIMENT)
    out = tmp_path / "out"
    out.mkdir()
    name = f"t{uuid.uuid4().hex[:8]}"
    wrapped, calls = wrap_commands(tmp_path)
    env = {"OUT": str(out), "PROJECT": name, "FAIL_LR": "0.2", **wrapped}
    try:
        assert run_cli(script, "launch", env=env).returncode == 0
        wait_until_idle(name)
        before = count_calls(calls, "squeue") + count_calls(calls, "sacct")
        res = run_cli(script, "table", "finetune", "--format", "json", env=env)
        assert res.returncode == 0, res.stderr
        rows = json.loads(res.stdout)["rows"]
        assert sorted((r["base.lr"], r["data"], r["state"]) for r in rows) == [
            (0.1, "a", "built"), (0.1, "b", "built"), (0.2, "a", "dep-failed"),
            (0.2, "b", "dep-failed"), (0.3, "a", "built"), (0.3, "b", "built")]
        asked = count_calls(calls, "squeue") + count_calls(calls, "sacct") - before
        assert 1 <= asked <= 2  # one squeue, maybe one sacct, for every job together
        before += asked
        res = run_cli(script, "table", "pretrain", "--where", "lr=0.1", "--format", "json",
                      env=env)
        assert [r["state"] for r in json.loads(res.stdout)["rows"]] == ["built"]
        assert count_calls(calls, "squeue") + count_calls(calls, "sacct") == before
    finally:
        cancel_all(name)
