"""The Slurm backend: each (tier, resource group, chunk) becomes one array job.

Dependencies use ``afterany`` on exactly the jobs that hold a task's dependencies (from this
launch or still live from an earlier one). ``afterany`` never leaves a job pending forever with
``DependencyNeverSatisfied`` (as ``afterok`` on a whole array does); instead each task's worker
checks its own dependencies' done markers and ends as "dependency failed" without running, so
one failed artifact costs only its own dependents.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ... import _atomic, paths
from ..._faults import crash_point
from ...config import Config
from ...errors import SubmissionError
from ...launching import LaunchContext
from ...plan import Group, Plan, PlannedTask, chunk
from ...store import JobRecord
from ..base import (
    Description,
    JobState,
    Resources,
    Scalar,
    TaskKey,
    TaskStatus,
    TaskUsage,
    common_resources,
)
from .client import SlurmClient, SubmissionUncertain
from .options import option_text, slurm_options
from .script import render_script

NAME = "slurm"


class SlurmBackend:
    """Submits, queries and cancels array jobs through one ``SlurmClient``."""

    name = NAME

    def __init__(self, config: Config, client: SlurmClient | None = None) -> None:
        self.config = config
        self.client = client or SlurmClient()

    def resolve(self, requirements: Mapping[str, Scalar], where: str) -> Resources:
        """Checked sbatch options plus the typed fields; errors name ``where`` and the key."""
        options = slurm_options(requirements, where=where)
        return common_resources(requirements, where, options)

    def _script(self, name: str, group: Group, n_tasks: int, spec_dir: str, log_dir: str,
                python: str, env: Mapping[str, str], setup: Sequence[str] = ()) -> str:
        throttle = group.resources.max_parallel
        array = f"0-{n_tasks - 1}" + (f"%{throttle}" if throttle else "")
        res = group.resources
        signal = (f"B:{res.checkpoint_signal}@{res.checkpoint_before_s}"
                  if res.checkpoint_before_s else None)
        return render_script(job_name=name, options=group.resources.options, array=array,
                             output=f"{log_dir}/{paths.LOG_PATTERN}", spec_dir=spec_dir,
                             python=python, env=env, setup=setup, signal=signal)

    # -- drylaunch --------------------------------------------------------------------------
    def describe(self, group: Group, *, validate: bool) -> Description:
        """The sbatch options of a group (and, with ``validate``, Slurm's verdict on it)."""
        throttle = group.resources.max_parallel
        lines = ["sbatch " + " ".join(option_text(o) for o in group.resources.options)
                 + (f" --array=…%{throttle}" if throttle else "")]
        if not validate:
            return Description(tuple(lines))
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / paths.SCRIPT
            script.write_text(self._script("drylaunch-check", group, len(group.tasks), tmp, tmp,
                                           "python3", {}))
            verdict = self.client.test_only(str(script))
        if verdict:
            lines.append(f"slurm says: {verdict}")
            return Description(tuple(lines), (f"stage '{group.stage}' "
                                              f"{group.resources.summary()}: {verdict}",))
        return Description((*lines, "slurm --test-only: accepted"))

    # -- launch ---------------------------------------------------------------------------
    def launch(self, plan: Plan, ctx: LaunchContext) -> list[JobRecord]:
        """Submit every group, tier by tier, recording each job as soon as Slurm accepts it."""
        max_tasks = self.client.max_array_size()
        group_no = 0
        for tier in plan.tiers:
            for group in tier:
                for chunk_no, tasks in enumerate(chunk(group.tasks, max_tasks)):
                    self._submit_chunk(ctx, group, group_no, chunk_no, tasks)
                group_no += 1
        return ctx.submitted

    def _submit_chunk(self, ctx: LaunchContext, group: Group, group_no: int, chunk_no: int,
                      tasks: Sequence[PlannedTask]) -> None:
        name = ctx.job_name(group, group_no, chunk_no)
        job = ctx.prepare(group, tasks, name, NAME)
        text = self._script(name, group, len(tasks), job.record.spec_dir, job.record.log_dir,
                            ctx.python, ctx.job_env(group), ctx.setup_lines(group))
        script = str(Path(job.record.spec_dir) / paths.SCRIPT)
        _atomic.write_bytes(script, text.encode("utf-8"), durable=False)
        extra = [f"--dependency=afterany:{':'.join(job.depends_on)}"] if job.depends_on else []
        crash_point("before-sbatch")
        try:
            job_id = self.client.submit(script, job_name=name, extra_args=extra)
        except SubmissionUncertain:  # may exist: keep the intent for the next launch
            raise
        except SubmissionError:  # refused for sure: the intent must not linger
            ctx.discard(job)
            raise
        crash_point("after-sbatch")
        ctx.confirm(job, job_id)

    # -- queries --------------------------------------------------------------------------
    def query(self, records: Sequence[JobRecord]) -> dict[TaskKey, TaskStatus]:
        """Task states: one squeue and at most one sacct call for all the records."""
        ids = [r.job_id for r in records if r.job_id]
        out: dict[TaskKey, TaskStatus] = {}
        for text, status in (self.client.query(ids) if ids else {}).items():
            key = TaskKey.parse(text)
            if key is not None:
                out[key] = _with_hold(key, status)
        return out

    def usage(self, records: Sequence[JobRecord]) -> dict[TaskKey, TaskUsage]:
        """Accounting for every task of ``records``: one sacct call."""
        ids = [r.job_id for r in records if r.job_id]
        out: dict[TaskKey, TaskUsage] = {}
        for text, used in (self.client.usage(ids) if ids else {}).items():
            key = TaskKey.parse(text)
            if key is not None:
                out[key] = used
        return out

    def cancel(self, records: Sequence[JobRecord]) -> None:
        ids = [r.job_id for r in records if r.job_id]
        if ids:
            self.client.cancel(ids)

    def find_by_name(self, name: str) -> list[str]:
        return self.client.find_by_name(name)


def _with_hold(key: TaskKey, status: TaskStatus) -> TaskStatus:
    """Mark a task Slurm holds (it will never start on its own) and say how to release it."""
    if status.state is not JobState.PENDING or "held" not in status.reason.lower():
        return status
    return TaskStatus(status.state, status.raw, status.reason, status.exit_code, held=True,
                      hint=f"held by the scheduler ({status.reason}); it will not start "
                           f"until `scontrol release {key}`")
