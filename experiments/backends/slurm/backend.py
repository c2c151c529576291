"""The Slurm backend: each (tier, requirement group, chunk) becomes one array job.

Dependencies use ``afterany`` on exactly the jobs that hold a task's dependencies (from this
launch or still live from an earlier one). ``afterany`` never leaves a job pending forever with
``DependencyNeverSatisfied`` (as ``afterok`` on a whole array does); instead each task's worker
checks its own dependencies' done markers and ends as "dependency failed" without running, so
one failed artifact costs only its own dependents.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ... import _atomic, paths
from ..._faults import crash_point
from ...config import Config
from ...errors import SubmissionError
from ...launching import LaunchContext
from ...plan import Group, Plan, chunk
from ...store import JobRecord
from .client import SlurmClient, SubmissionUncertain
from .options import array_throttle, sbatch_options
from .script import render_script

BACKEND = "slurm"


class SlurmBackend:
    """Submits, queries and cancels array jobs through one ``SlurmClient``."""

    name = BACKEND

    def __init__(self, config: Config, client: SlurmClient | None = None) -> None:
        self.config = config
        self.client = client or SlurmClient()

    def _options(self, group: Group) -> tuple[list[str], int | None]:
        reqs = group.requirements_dict
        where = f"stage '{group.stage}' (requirements {reqs})"
        return sbatch_options(reqs, where=where), array_throttle(reqs)

    def _script(self, name: str, group: Group, n_tasks: int, spec_dir: str, log_dir: str,
                python: str) -> str:
        options, throttle = self._options(group)
        array = f"0-{n_tasks - 1}" + (f"%{throttle}" if throttle else "")
        return render_script(job_name=name, options=options, array=array,
                             output=f"{log_dir}/%A_%a.log", spec_dir=spec_dir, python=python)

    # -- drylaunch --------------------------------------------------------------------------
    def describe(self, group: Group, executor: Any, *, validate: bool,
                 problems: list[str]) -> list[str]:
        """The sbatch options of a group (and, with ``validate``, Slurm's verdict on it)."""
        options, throttle = self._options(group)
        lines = ["sbatch " + " ".join(options) + (f" --array=…%{throttle}" if throttle else "")]
        if validate:
            with tempfile.TemporaryDirectory() as tmp:
                script = Path(tmp) / paths.SCRIPT
                script.write_text(self._script("drylaunch-check", group, len(group.tasks),
                                               tmp, tmp, "python3"))
                verdict = self.client.test_only(str(script))
            if verdict:
                problems.append(f"stage '{group.stage}' {dict(group.requirements)}: {verdict}")
                lines.append(f"slurm says: {verdict}")
            else:
                lines.append("slurm --test-only: accepted")
        return lines

    # -- launch ---------------------------------------------------------------------------
    def launch(self, plan: Plan, ctx: LaunchContext) -> list[JobRecord]:
        """Submit every group, tier by tier, recording each job as soon as Slurm accepts it."""
        for group in plan.groups:
            self._options(group)  # validate every group before the first sbatch
        max_tasks = self.client.max_array_size()
        group_no = 0
        for tier in plan.tiers:
            for group in tier:
                for chunk_no, tasks in enumerate(chunk(group.tasks, max_tasks)):
                    self._submit_chunk(ctx, group, group_no, chunk_no, tasks)
                group_no += 1
        return ctx.submitted

    def _submit_chunk(self, ctx: LaunchContext, group: Group, group_no: int, chunk_no: int,
                      tasks: Sequence[Any]) -> None:
        name = ctx.job_name(group, group_no, chunk_no)
        job = ctx.prepare(group, tasks, name, BACKEND)
        text = self._script(name, group, len(tasks), job.record.spec_dir, job.record.log_dir,
                            ctx.python)
        script = str(Path(job.record.spec_dir) / paths.SCRIPT)
        _atomic.write_bytes(script, text.encode("utf-8"), durable=False)
        extra = [f"--dependency=afterany:{':'.join(job.depends_on)}"] if job.depends_on else []
        crash_point("before-sbatch")
        try:
            job_id = self.client.submit(script, job_name=name, extra_args=extra)
        except SubmissionUncertain:  # may exist: keep the intent for the next launch
            raise
        except SubmissionError:  # refused for sure: the intent must not linger
            ctx.store.remove(job.record.stage, {name})
            raise
        crash_point("after-sbatch")
        ctx.confirm(job, job_id)

    # -- queries --------------------------------------------------------------------------
    def query(self, records: Sequence[JobRecord]) -> dict[str, Any]:
        """Task states keyed ``<job_id>_<index>``: one squeue and at most one sacct call."""
        ids = [r.job_id for r in records if r.job_id]
        return dict(self.client.query(ids)) if ids else {}

    def cancel(self, records: Sequence[JobRecord]) -> None:
        ids = [r.job_id for r in records if r.job_id]
        if ids:
            self.client.cancel(ids)

    def find_by_name(self, name: str) -> list[str]:
        return self.client.find_by_name(name)
