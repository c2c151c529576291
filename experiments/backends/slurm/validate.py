"""What drylaunch says about one group on Slurm, and what ``drylaunch --validate`` checks.

:func:`describe` shows the group's sbatch options (and its pack). With ``validate`` it asks
``sbatch --test-only`` about the group's real batch script, and checks the group's time, CPUs
and GPUs against its partition's limits (and its QOS's, when accounting can be asked), whatever
``EnforcePartLimits`` says: with Slurm's default (NO) a job over them is accepted, even by
``--test-only``, and then pends forever. Each problem names an artifact and the fix.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from ... import paths
from ...errors import SchedulerQueryError
from ...plan import Group
from ...plan.packs import PackFit
from ...resources import Scalar, option_word
from ..base import Description
from . import limits
from .sbatch_options import with_time
from .script import job_script
from .site_limits import SiteLimits

OVER_LIMITS = ("slurm --test-only: accepted, but over the site's limits (below); set them in "
               "the artifact's get_requirements() or config.json's default_slurm_args, or "
               "`--set KEY=VALUE` for one launch")


def describe(group: Group, fit: PackFit, site: SiteLimits, *, validate: bool) -> Description:
    """The sbatch options of a group packed by ``fit`` (and, with ``validate``, Slurm's verdict
    on it and the site's limits it exceeds)."""
    throttle = group.resources.max_parallel
    options = group.resources.options
    if fit.size > 1 and fit.time_s is not None:
        options = tuple(with_time(options, fit.time_s))
    res = group.resources
    signal = (f" --signal=B:{res.checkpoint_signal}@{res.checkpoint_before_s}"
              if res.checkpoint_before_s else "")  # as the batch script asks for it
    lines = ["sbatch " + " ".join(option_word(o) for o in options) + signal
             + (f" --array=…%{throttle}" if throttle else "")]
    if group.resources.pack > 1:
        lines.append(describe_pack(group.resources.pack, fit))
    if not validate:
        return Description(tuple(lines))
    problems = limit_problems(group, site)
    verdict = _test_only(group, fit, site)
    if verdict:
        lines.append(f"slurm says: {verdict}")
        problems.append(f"stage '{group.stage}' {group.resources.summary()}: {verdict}")
    else:
        lines.append(OVER_LIMITS if problems
                     else "slurm --test-only: accepted; within the site's limits")
    return Description(tuple(lines), tuple(problems))


def _test_only(group: Group, fit: PackFit, site: SiteLimits) -> str | None:
    """``sbatch --test-only``'s objection to the group's batch script, or None."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / paths.SCRIPT
        tasks = -(-len(group.tasks) // fit.size)
        script.write_text(job_script(group, name="drylaunch-check", array=f"0-{tasks - 1}",
                                     spec_dir=tmp, log_dir=tmp, python="python3", env={},
                                     time_s=fit.time_s if fit.size > 1 else None))
        return site.client.test_only(str(script))


def limit_problems(group: Group, site: SiteLimits) -> list[str]:
    """The group's time, CPUs and GPUs against its partition's limits (and its QOS's), each
    problem naming an artifact and the fix; none when the partitions cannot be read
    (``--test-only`` then reports what is wrong with the controller)."""
    try:
        parts = site.partitions()
    except SchedulerQueryError:
        return []
    res = group.resources
    reqs = dict(res.requirements)
    name = reqs.get("partition")
    part = (parts.get(str(name)) if name is not None
            else next((p for p in parts.values() if p.default), None))
    nodes = reqs.get("nodes")
    node_gpus = site.node_gpus() if res.gpus and part is not None else None
    found = [] if part is None else limits.check_job(
        part, res.time_s, res.cpus, res.gpus, qos=qos_of(reqs, site),
        nodes=nodes if isinstance(nodes, int) and nodes > 0 else 1,
        node_gpus=None if node_gpus is None else node_gpus.get(part.name, []))
    first, more = group.tasks[0].relpath, len(group.tasks) - 1
    who = f"artifact {first}" + (f" and {more} more like it" if more else "")
    return [f"stage '{group.stage}', {who}: {p.replace('the job asks', 'it asks')}; "
            "Slurm would accept it and leave it queued, which never clears on its own"
            for p in found]


def qos_of(reqs: Mapping[str, Scalar], site: SiteLimits) -> limits.QosLimits | None:
    """The QOS a job would run under: its ``qos``, else the default QOS of the user's
    association (with its ``account``); None when that cannot be told or read."""
    qos = site.qos_limits()
    name = reqs.get("qos")
    if name is None and qos:
        account = reqs.get("account")
        defaults = {a.default_qos for a in site.associations()
                    if a.user and a.default_qos and account in (None, a.account)}
        name = defaults.pop() if len(defaults) == 1 else None
    return qos.get(str(name)) if name is not None else None


def describe_pack(asked: int, fit: PackFit) -> str:
    """What drylaunch says about a packed group: how many per task, the time, and why."""
    time = (f", --time={limits.format_time(fit.time_s)} per task" if fit.time_s is not None
            else ", --time left to the artifact's own (no `time` requirement)")
    line = f"pack: up to {fit.size} artifact(s) per task{time}"
    return f"{line} ({fit.why})" if fit.why else line
