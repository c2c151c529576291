"""Pure rendering of the batch script that runs one array job's tasks.

The script is a list of ``#SBATCH`` directives, then a few lines of bash::

    #!/bin/bash
    #SBATCH --cpus-per-task=8            <- the requirements' options, sorted
    #SBATCH --job-name=proj.train.x.t0g0c0
    #SBATCH --array=0-99%10
    #SBATCH --output=/logs/proj/train/%A_%a.log
    #SBATCH --error=/logs/proj/train/%A_%a.log
    #SBATCH --open-mode=append           <- a requeued task keeps its earlier attempts' output
    set -u
    export EXPERIMENTS_PROJECT=proj      <- the job's environment (project and stage)
    module load cuda                     <- setup lines, if any (each followed by a check)
    echo "experiments: task ... on <host> at <date>, restart ${SLURM_RESTART_COUNT:-0}" >&2
    command -v '<python>' >/dev/null || { echo "... python '<python>' not found ..."; exit 127; }
    exec '<python>' -I -S -c '<bootstrap>' '<package parent>' '<spec_dir>' "$SLURM_ARRAY_TASK_ID"

The last line starts the worker as :mod:`experiments.worker.bootstrap` says (isolated, without
``site``, this package's folder on ``sys.path``: the interpreter's start is the per-task floor);
without ``package_dir`` it is ``exec '<python>' -m experiments.worker '<spec_dir>' ...``.

The framework's own directives come *after* the requirements' options, so that even a slip in
validation could not override them (sbatch keeps the last value of a repeated option). Every
``#SBATCH`` value is checked and quoted by :mod:`.options`; everything on a shell line is
``shlex``-quoted. No user string is ever placed where the shell would read it unquoted.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ... import paths
from ...errors import DefinitionError
from ...worker import task_setup
from ...worker.bootstrap import BOOTSTRAP, FLAGS, PACKAGE_PARENT
from ...worker.common import EARLY_FAILURE, EXIT_ZERO_ENV
from .sbatch_options import Option, check_not_owned, check_text, quote_directive_value, with_time

if TYPE_CHECKING:
    from ...plan import Group

JOB_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
JOB_NAME_MAX = 200
ARRAY_RE = re.compile(r"\d+(-\d+)?(:\d+)?(,\d+(-\d+)?(:\d+)?)*(%\d+)?")
OPTION_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
WORKER_MODULE = "experiments.worker"
# Every worker of a Slurm job exits 0 after an ordinary failure, so that tasks waiting on it
# with ``aftercorr`` are released (and end as "dependency failed"); see :mod:`.deps`.
WORKER_ENV = {EXIT_ZERO_ENV: "1"}

BANNER = ('echo "experiments: task ${SLURM_ARRAY_JOB_ID:-?}_${SLURM_ARRAY_TASK_ID:-?} '
          'on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ), '
          'restart ${SLURM_RESTART_COUNT:-0}" >&2')


def check_job_name(job_name: str) -> str:
    """A job name is ``[A-Za-z0-9._-]+`` and at most 200 characters; return it."""
    if (not isinstance(job_name, str) or not JOB_NAME_RE.fullmatch(job_name)
            or len(job_name) > JOB_NAME_MAX):
        raise DefinitionError(f"job name {job_name!r:.80} must be 1-{JOB_NAME_MAX} characters "
                              "of letters, digits, '.', '_' and '-'")
    return job_name


def directive(option: Option, where: str) -> str:
    """One ``#SBATCH`` line for an ``(option, value)`` pair such as ``("mem", "64G")``."""
    name, value = option
    if not isinstance(name, str) or not OPTION_NAME_RE.fullmatch(name):
        raise DefinitionError(f"{where}: {name!r:.80} is not a long sbatch option name like "
                              "'mem'")
    if value is None:
        return f"#SBATCH --{name}"
    text = check_text(value, f"{where} --{name}")
    return f"#SBATCH --{name}={quote_directive_value(text)}"


def _user_directives(options: Sequence[Option], job_name: str) -> list[str]:
    """The requirements' directives, checked again here so no caller can slip one past."""
    lines = []
    for option in options:
        where = f"job {job_name} option {option!r:.60}"
        if isinstance(option[0], str):
            check_not_owned(option[0], where)
        lines.append(directive(option, where))
    return lines


SIGNAL_RE = re.compile(r"B:[A-Z0-9]+@\d+")


def _signal_directive(signal: str | None, job_name: str) -> list[str]:
    """``--signal=B:USR2@300``: to the batch shell (our worker), 300 s before the limit."""
    if signal is None:
        return []
    if not SIGNAL_RE.fullmatch(signal):
        raise DefinitionError(f"job {job_name}: signal {signal!r:.40} is not like 'B:USR2@300'")
    return [f"#SBATCH --signal={signal}"]


def _own_directives(job_name: str, array: str, output: str) -> list[str]:
    if not isinstance(array, str) or not ARRAY_RE.fullmatch(array):
        raise DefinitionError(f"job {job_name}: array {array!r:.60} is not an index "
                              "specification like '0-99' or '0-99%10'")
    where = f"job {job_name} output path"
    check_text(output, where)
    if "\\" in output:  # sbatch turns off its %A/%a patterns when the path has a backslash
        raise DefinitionError(f"{where} {output!r:.80} contains a backslash; choose a "
                              "log_directory without one")
    return [f"#SBATCH --job-name={job_name}", f"#SBATCH --array={array}",
            f"#SBATCH --output={quote_directive_value(output)}",
            f"#SBATCH --error={quote_directive_value(output)}",
            "#SBATCH --open-mode=append"]


def _exports(env: Mapping[str, str], job_name: str) -> list[str]:
    lines = []
    for key in sorted(env):
        value = env[key]
        if not isinstance(key, str) or not ENV_KEY_RE.fullmatch(key):
            raise DefinitionError(f"job {job_name}: {key!r:.60} is not a valid environment "
                                  "variable name (letters, digits and '_', not starting "
                                  "with a digit)")
        if not isinstance(value, str) or "\x00" in value:
            raise DefinitionError(f"job {job_name}: environment variable {key} must be a "
                                  f"string without NUL characters, got {value!r:.60}")
        lines.append(f"export {key}={shlex.quote(value)}")
    return lines


def _shell_word(value: str, what: str, job_name: str) -> str:
    return shlex.quote(check_text(value, f"job {job_name} {what}"))


def _exec_line(python: str, spec_dir: str, package_dir: str | None, job_name: str) -> str:
    """The line that replaces the shell with the worker."""
    spec = _shell_word(spec_dir, "spec_dir", job_name)
    interpreter = _shell_word(python, "python", job_name)
    if package_dir is None:
        return f'exec {interpreter} -m {WORKER_MODULE} {spec} "$SLURM_ARRAY_TASK_ID"'
    return (f"exec {interpreter} {' '.join(FLAGS)} -c {shlex.quote(BOOTSTRAP)} "
            f'{_shell_word(package_dir, "package_dir", job_name)} {spec} "$SLURM_ARRAY_TASK_ID"')
def _python_check(python: str, job_name: str) -> str:
    """A line that ends the task with a reason ``status`` shows when the interpreter is missing
    on the node (bash's own ``exec`` would only exit 127 without a word ``status`` can read)."""
    interpreter = _shell_word(python, "python", job_name)
    return (f"command -v {interpreter} >/dev/null || {{ echo \"{EARLY_FAILURE} python\" "
            f"{interpreter} \"not found on $(hostname); set \\\"python\\\" in config.json to "
            "an interpreter the nodes have\" >&2; exit 127; }")


def _setup(setup: Sequence[str], job_name: str) -> list[str]:
    """The user's setup lines (their own shell, run as written), each checked after it runs;
    ``set -u`` is off meanwhile, since activation scripts often read unset variables."""
    if not setup:
        return []
    try:
        lines = task_setup.check_lines(list(setup), f"job {job_name}")
    except ValueError as exc:
        raise DefinitionError(str(exc)) from None
    return ["set +u", *task_setup.prelude(lines), "set -u"]


def render_script(*, job_name: str, options: Sequence[Option], array: str, output: str,
                  spec_dir: str, python: str, env: Mapping[str, str] | None = None,
                  package_dir: str | None = None, setup: Sequence[str] = (),
                  signal: str | None = None) -> str:
    """The batch script of one array job (pure: the same arguments give the same text).

    ``package_dir`` is the folder holding the ``experiments`` package the worker imports
    (:data:`experiments.worker.bootstrap.PACKAGE_PARENT`); None starts it with ``-m``. ``setup``
    lines run after the exports, before the worker; ``signal`` (``B:USR2@300``) asks Slurm to
    signal the worker before the time limit. Raises ``DefinitionError`` for any value that
    could not round-trip into the script.
    """
    check_job_name(job_name)
    lines = ["#!/bin/bash", *_user_directives(options, job_name),
             *_own_directives(job_name, array, output), *_signal_directive(signal, job_name),
             "set -u", *_exports(env or {}, job_name), *_setup(setup, job_name), BANNER,
             _python_check(python, job_name), _exec_line(python, spec_dir, package_dir, job_name)]
    return "\n".join(lines) + "\n"


def job_script(group: Group, *, name: str, array: str, spec_dir: str, log_dir: str,
               python: str, env: Mapping[str, str], throttle: int | None = None,
               setup: Sequence[str] = (), time_s: int | None = None) -> str:
    """The batch script of one array of ``group`` (``array``: its ``--array`` indices;
    ``throttle``: its share of the launch's budget, else the group's ``max_parallel``;
    ``time_s``: a pack's own time limit instead of the artifact's)."""
    res = group.resources
    throttle = throttle or res.max_parallel
    signal = (f"B:{res.checkpoint_signal}@{res.checkpoint_before_s}"
              if res.checkpoint_before_s else None)
    return render_script(
        job_name=name, options=res.options if time_s is None else with_time(res.options, time_s),
        array=array + (f"%{throttle}" if throttle else ""),
        output=f"{log_dir}/{paths.LOG_PATTERN}", spec_dir=spec_dir, python=python,
        env={**env, **WORKER_ENV}, package_dir=PACKAGE_PARENT, setup=setup, signal=signal)
