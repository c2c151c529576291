"""Requirements → sbatch options, with the validation every ``#SBATCH`` value goes through.

``sbatch_options({"cpus": 8, "gpus": "A100:4", "mem": 64})`` gives
``["--cpus-per-task=8", "--gpus=A100:4", "--mem=64G"]``: a few friendly names are mapped
(``cpus`` → ``--cpus-per-task``; an int ``mem`` means GB, a float GB is rounded up to MB), every
other key passes through as ``--key=value`` with underscores turned into hyphens, ``True`` gives
a bare ``--key`` and ``False`` leaves it out (``requeue=False`` gives ``--no-requeue``).
``max_parallel`` is not an sbatch option but the array throttle (``--array=0-99%max_parallel``),
read by :func:`array_throttle`. Options come back unquoted and sorted by name.

Quoting versus rejection. ``#SBATCH`` lines are read by sbatch's own parser, not a shell, and
we checked it on Slurm 22.05: arguments split at whitespace; ``"…"`` and ``'…'`` group; a
backslash escapes the next character, but *not* whitespace (``a\\ b`` splits); an unquoted ``#``
starts a comment; ``$(…)``, backticks and ``$VAR`` are never expanded; a line ends at the newline.
So we **quote**: a value made only of ``[A-Za-z0-9_./:,=+@%^~-]`` is written as is, any other
is wrapped in double quotes with ``\\`` and ``"`` backslash-escaped, which round-trips spaces,
quotes, ``#``, ``$``, backticks, ``;`` and unicode exactly (tests submit them to real Slurm and
read them back). We **reject** what cannot round-trip: the empty string, control characters
(newline, CR, NUL, tab, ESC …) and Unicode line/paragraph separators — a newline would end the
``#SBATCH`` block and turn the rest into shell code. Keys must look like option names, must not
be options the framework sets itself (``--array``, ``--output`` …), nor an abbreviation of one:
sbatch's getopt accepts unambiguous prefixes, so ``--outp=/x`` really does replace ``--output``.
And they must be sbatch's long options, spelled out (:mod:`.sbatch_names`): ``J``, ``D`` or
``part`` are refused at ``drylaunch`` rather than failing at ``sbatch``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence

from ...errors import DefinitionError
from ...resources import FRAMEWORK_KEYS, THROTTLE_KEY, option_word
from . import sbatch_names
from .limits import format_time

KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
SAFE_VALUE_RE = re.compile(r"[A-Za-z0-9_./:,=+@%^~-]+")

# Friendly names → sbatch option names; anything else maps key.replace("_", "-").
ALIASES = {"cpus": "cpus-per-task"}

# Options the framework sets, or that would break how it submits and tracks jobs: why, and the
# alternative to use.
OWNED: dict[str, str] = {
    "array": "the framework builds the array; use 'max_parallel' to throttle it",
    "output": "logs go to the configured log_directory",
    "error": "logs go to the configured log_directory",
    "open-mode": "logs are always appended to, so a requeued task keeps its first attempt",
    "job-name": "job names are chosen by the framework and used to find jobs again",
    "dependency": "dependencies come from the artifacts' fields",
    "hold": "a held job never starts; the framework releases nothing",
    "parsable": "the framework reads sbatch's output itself",
    "test-only": "use `drylaunch --validate`",
    "wrap": "the framework writes the batch script",
    "chdir": "steps run with absolute paths",
    "export": "set environment variables in the task's steps",
    "export-file": "set environment variables in the task's steps",
    "wait": "submission must not block until the job ends",
    "signal": "use the 'checkpoint_before' requirement (and 'checkpoint_signal')",
    "clusters": "jobs must stay on the cluster the framework queries",
    "help": "not a requirement",
    "usage": "not a requirement",
    "version": "not a requirement",
}

# Keys whose value is a quantity: a bool is a mistake, an int must be at least this.
MIN_INT = {"cpus": 1, "cpus-per-task": 1, "nodes": 1, "gpus": 0, "mem": 0, THROTTLE_KEY: 1}

_BAD_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}  # control chars, surrogates, line/para separators


def check_text(value: str, where: str) -> str:
    """Check a string that will land on an ``#SBATCH`` line (or in a path); return it.

    Raises ``DefinitionError`` for the empty string and for characters that cannot round-trip.
    """
    if not isinstance(value, str):
        raise DefinitionError(f"{where}: expected a string, got {type(value).__name__}")
    if value == "":
        raise DefinitionError(f"{where}: the empty string is not a valid value; leave the "
                              "key out to use Slurm's default")
    for ch in value:
        if unicodedata.category(ch) in _BAD_CATEGORIES:
            raise DefinitionError(
                f"{where}: value {value!r:.80} contains the control character {ch!r} "
                "(newlines, tabs, NUL and other control characters cannot be passed to Slurm "
                "safely); remove it")
    return value


def quote_directive_value(value: str) -> str:
    """Quote a checked value for sbatch's ``#SBATCH`` parser so it reads back exactly."""
    if SAFE_VALUE_RE.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def option_name(key: str, where: str) -> str:
    """The sbatch long option name for a requirement key, after checking it."""
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise DefinitionError(f"{where}: {key!r} is not a valid option name; use letters, "
                              "digits, '_' and '-', starting with a letter (e.g. 'cpus')")
    name = ALIASES.get(key, key.replace("_", "-"))
    long = sbatch_names.SHORT.get(name)
    if long in OWNED:
        raise DefinitionError(f"{where}: -{name} is short for --{long}, which is set by the "
                              f"framework and cannot be a requirement ({OWNED[long]})")
    if long is None:
        check_not_owned(name, where)
    problem = sbatch_names.unknown(name)
    if problem:
        raise DefinitionError(f"{where}: {problem}")
    return name


def check_not_owned(name: str, where: str) -> None:
    """Reject an option the framework sets, or an abbreviation sbatch would expand to one."""
    hits = sorted(o for o in OWNED if o.startswith(name))
    if not hits:
        return
    if name in OWNED:
        raise DefinitionError(f"{where}: --{name} is set by the framework and cannot be a "
                              f"requirement ({OWNED[name]})")
    raise DefinitionError(f"{where}: --{name} abbreviates --{', --'.join(hits)}, which the "
                          "framework sets; spell out the option you mean in full")


def _format_number(value: int | float, where: str) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise DefinitionError(f"{where}: {value!r} is not a finite number")
    return str(value) if isinstance(value, int) else format(value, "g")


def _check_quantity(key: str, name: str, value: object, where: str) -> None:
    minimum = MIN_INT.get(key, MIN_INT.get(name))
    if minimum is None:
        return
    if isinstance(value, bool):
        raise DefinitionError(f"{where}: expects a number or a string, got {value!r}; "
                              f"e.g. {{'{key}': {max(minimum, 1)}}}")
    if isinstance(value, int) and value < minimum:
        raise DefinitionError(f"{where}: {value!r} is too small; use an integer >= {minimum}")


def _value_text(key: str, name: str, value: object, where: str) -> str | None:
    """The text after ``--name=``; None for a bare flag."""
    if isinstance(value, bool):
        return None
    if key == "mem" and isinstance(value, (int, float)):
        if isinstance(value, float):
            mb = math.ceil(value * 1024) if math.isfinite(value) else -1
            if mb < 0:
                raise DefinitionError(f"{where}: {value!r} is not a size in GB")
            return f"{mb}M"
        return f"{value}G"
    if isinstance(value, (int, float)):
        return _format_number(value, where)
    if isinstance(value, str):
        return check_text(value, where)
    raise DefinitionError(f"{where}: {value!r:.60} has type {type(value).__name__}; use a str, "
                          "int, float or bool")


Option = tuple[str, str | None]  # (sbatch long option name, value; None for a bare flag)


def _option(key: str, value: object, where: str) -> Option | None:
    """The sbatch option for one requirement, or None when it adds nothing."""
    here = f"{where} requirement {key!r}"
    name = option_name(key, here)
    _check_quantity(key, name, value, here)
    if key == "gpus" and value == 0 and not isinstance(value, bool):
        return None  # no GPU: leave --gpus out rather than ask every cluster to accept 0
    text = _value_text(key, name, value, here)
    if text is not None:
        return name, text
    if value:
        return name, None
    if name == "requeue":
        return "no-requeue", None
    return None


def slurm_options(requirements: Mapping[str, object], *, where: str) -> list[Option]:
    """Checked ``(option, value)`` pairs, sorted by option name, for resolved requirements.

    ``where`` names the requirements' owner in error messages, e.g. an artifact.
    """
    by_name: dict[str, tuple[str, Option]] = {}
    for key, value in requirements.items():
        if key == THROTTLE_KEY:
            array_throttle({key: value}, where=where)
            continue
        if key in FRAMEWORK_KEYS:  # checked by common_resources, not an sbatch option
            continue
        option = _option(key, value, where)
        if option is None:
            continue
        if option[0] in by_name:
            raise DefinitionError(f"{where}: requirements {by_name[option[0]][0]!r} and {key!r} "
                                  f"both set --{option[0]}; keep one")
        by_name[option[0]] = (key, option)
    return [by_name[name][1] for name in sorted(by_name)]


def with_time(options: Sequence[Option], time_s: int) -> list[Option]:
    """The options with ``--time`` set to ``time_s`` (a pack's limit), kept sorted by name."""
    time = format_time(time_s)
    return sorted([o for o in options if o[0] != "time"] + [("time", time)])


def sbatch_options(requirements: Mapping[str, object], *, where: str) -> list[str]:
    """sbatch option strings (unquoted, sorted by option name) for resolved requirements."""
    return [option_word(o) for o in slurm_options(requirements, where=where)]


def array_throttle(requirements: Mapping[str, object], *,
                   where: str = "requirements") -> int | None:
    """The ``max_parallel`` requirement (how many tasks of one array may run at once), if set."""
    value = requirements.get(THROTTLE_KEY)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DefinitionError(f"{where} requirement {THROTTLE_KEY!r}: {value!r:.40} must be an "
                              f"integer >= 1 (tasks of one array running at once), e.g. 64")
    return value
