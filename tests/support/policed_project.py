"""A project run as an unprivileged test user on the policed cluster, with ``sacctmgr``
wrapped to count its calls (the submit-limit and waves scenarios share it)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.slurm_cluster import PolicedCluster

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Project:
    cluster: PolicedCluster
    user: str
    dir: Path
    name: str
    python: str
    pythonpath: str

    def cli(self, *args: str, time_limit: str, n: int = 500) -> subprocess.CompletedProcess[str]:
        """``python exp.py ARGS`` as the user (TIME: each artifact's ``time``; N artifacts),
        with ``sacctmgr`` wrapped to log its calls (:meth:`sacctmgr_calls`)."""
        env = [f"EXPERIMENTS_HOME={self.dir}/home", f"PYTHONPATH={self.pythonpath}",
               "COLUMNS=200", f"TIME={time_limit}", f"N={n}",
               f"PATH={self.dir}/bin:{os.environ.get('PATH', '/usr/bin:/bin')}"]
        return self.cluster.run_as(self.user, "env", *env, self.python, "exp.py", *args,
                                   check=False, timeout=300, cwd=str(self.dir))

    def sacctmgr_calls(self) -> int:
        """How many times the CLI ran ``sacctmgr`` so far."""
        log = self.dir / "sacctmgr.log"
        return len(log.read_text().splitlines()) if log.exists() else 0

    def live(self) -> list[str]:
        out = self.cluster.run("squeue", "-h", "-r", "-u", self.user, "-o", "%i|%j",
                               check=False).stdout
        return [line for line in out.splitlines() if self.name in line]
