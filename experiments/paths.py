"""Every on-disk name the package uses, in one place.

Artifact tree (under the executor's ``artifact_path``)::

    <relpath>/                 the artifact's own directory
    <relpath>/.artifact.json   class and parameters, so a person can tell what a folder is
    <relpath>/.status.json     the last attempt: state, times, host, job, failed step, exit code
    <relpath>/.done            the done marker, written last and atomically by a successful run;
                               holds the build id of that build
    <relpath>/.done.invalidated-<UTC stamp>
                               a done marker moved aside by ``invalidate`` or
                               ``launch --rebuild-stale`` (the results stay where they are)
    <relpath>/.lock            held (flock) by the worker building it
    <relpath>/.build-lock      where flock is unsupported: created (O_EXCL) by the worker
                               building it, naming its job, host and pid (see ``locking``)

Experiments home (``~/.experiments`` or ``$EXPERIMENTS_HOME``)::

    config.json
    logs/<project>/<stage>/<job>_<index>.log
    projects/<project>/<stage>/jobs.json      what was submitted (the store's snapshot)
    projects/<project>/<stage>/jobs.journal-<G>.jsonl   events since that snapshot
    projects/<project>/specs/<job_name>/      task specs read by the worker
    projects/<project>/.launch.lock           one launcher per project at a time
    projects/<project>/stale-cache/<root>.json   staleness verdicts kept between commands
    projects/<project>/detached/<stamp>.log   output of a `launch --local --detach` launcher
    snapshots/<id>/code/                      frozen code the tasks of a launch run in
"""

from __future__ import annotations

import hashlib
import os
import re

from .errors import DefinitionError

TYPE_CHECKING = False  # typing costs every task's worker a few ms: only mypy reads this
if TYPE_CHECKING:
    from pathlib import Path

DONE = ".done"
META = ".artifact.json"
STATUS = ".status.json"
CHECKPOINT = ".checkpoint"  # EXPERIMENTS_CHECKPOINT_DIR: kept across attempts
LOCK = ".lock"
BUILD_LOCK = ".build-lock"  # the lock file used where flock is not supported
INVALIDATED = ".done.invalidated-"  # + a UTC time stamp such as 20261129T143000Z
SPEC_TASKS = "tasks.jsonl"
SPEC_INDEX = "tasks.idx"
SCRIPT = "job.sbatch"
DEPENDENTS = "dependents"  # in a spec dir: one JSON file per array waiting task-by-task on it
CANCEL_REQUESTED = "cancel-requested"  # in a spec dir: the user cancelled this job

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(kind: str, name: object) -> str:
    """Validate a project or stage name (it becomes a folder and part of job names)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DefinitionError(
            f"{kind} name {name!r:.60} is not allowed; use 1-100 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit"
        )
    return name


def artifact_dir(root: str, relpath: str) -> str:
    return os.path.join(root, relpath)


def checkpoint_dir(root: str, relpath: str) -> str:
    """Where a command keeps its checkpoints (``EXPERIMENTS_CHECKPOINT_DIR``)."""
    return os.path.join(root, relpath, CHECKPOINT)


def done_marker(root: str, relpath: str) -> str:
    return os.path.join(root, relpath, DONE)


def status_file(root: str, relpath: str) -> str:
    return os.path.join(root, relpath, STATUS)


def meta_file(root: str, relpath: str) -> str:
    return os.path.join(root, relpath, META)


def lock_file(root: str, relpath: str) -> str:
    return os.path.join(root, relpath, LOCK)


def lock_file_fallback(root: str, relpath: str) -> str:
    """The exclusive-create lock file a worker uses where ``flock`` is not supported."""
    return os.path.join(root, relpath, BUILD_LOCK)


def invalidated_marker(root: str, relpath: str, stamp: str) -> str:
    """Where a done marker goes when its artifact is marked for rebuilding at ``stamp``."""
    return os.path.join(root, relpath, INVALIDATED + stamp)


def project_dir(home: Path, project: str) -> Path:
    return home / "projects" / project


def stage_dir(home: Path, project: str, stage: str) -> Path:
    return project_dir(home, project) / stage


def jobs_file(home: Path, project: str, stage: str) -> Path:
    return stage_dir(home, project, stage) / "jobs.json"


JOURNAL_PREFIX, JOURNAL_SUFFIX = "jobs.journal-", ".jsonl"


def journal_file(home: Path, project: str, stage: str, generation: int) -> Path:
    """The store's append-only event journal of one stage, for snapshot ``generation``."""
    return stage_dir(home, project, stage) / f"{JOURNAL_PREFIX}{generation}{JOURNAL_SUFFIX}"


def launch_lock(home: Path, project: str) -> Path:
    return project_dir(home, project) / ".launch.lock"


def launch_stop_request(home: Path, project: str) -> Path:
    """Written by ``cancel`` to ask a running launch of the project to stop submitting."""
    return project_dir(home, project) / ".launch.stop"


def stale_cache_file(home: Path, project: str, root: str) -> Path:
    """Staleness verdicts of one artifact root kept between commands (a cache)."""
    tag = hashlib.blake2b(os.path.normpath(root).encode("utf-8"), digest_size=8).hexdigest()
    return project_dir(home, project) / "stale-cache" / f"{tag}.json"


def accepted_log(home: Path, project: str) -> Path:
    """Every ``accept`` of the project, one JSON line each (``history`` lists them)."""
    return project_dir(home, project) / "accepted.jsonl"


def local_job_counter(home: Path, project: str) -> Path:
    return project_dir(home, project) / "local_job_counter"


def detached_log(home: Path, project: str, stamp: str) -> Path:
    """Where a detached local launcher writes its output (it has no terminal)."""
    return project_dir(home, project) / "detached" / f"{stamp}.log"


def spec_dir(home: Path, project: str, job_name: str) -> Path:
    return project_dir(home, project) / "specs" / job_name


def log_dir(log_root: Path, project: str, stage: str) -> Path:
    return log_root / project / stage


def task_log(directory: Path, job_id: str, index: int) -> Path:
    """The log of task ``index`` of job ``job_id`` in a stage's log directory (the Slurm batch
    script names the same file with ``LOG_PATTERN``)."""
    return directory / f"{job_id}_{index}.log"


def log_file(log_root: Path, project: str, stage: str, job_id: str, index: int) -> Path:
    return task_log(log_dir(log_root, project, stage), job_id, index)


LOG_PATTERN = "%A_%a.log"  # how the Slurm batch script asks for log_file's name


def snapshots_dir(home: Path) -> Path:
    """The content-addressed store of code snapshots: ``<home>/snapshots/<id>/``."""
    return home / "snapshots"
