"""Requirements and ``Resources``: what an artifact asks for, checked and typed once.

``freeze_requirements`` checks what ``get_requirements()`` returns (str keys, scalar values);
``common_resources`` reads the keys every backend understands (``cpus``, ``gpus``, ``mem``,
``time``) and the framework's own keys (``max_parallel``, the checkpoint keys, ``pack`` and
``pack_time``, never passed to a scheduler) into a frozen :class:`Resources`. Durations follow
Slurm's forms (:func:`parse_duration_s`) and sizes Slurm's units (:func:`mem_mb`). Errors name
``where`` (the artifact) and the key. Imports nothing of the planner, backends or launch path:
they all build on it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import DefinitionError

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Resources:
    """An artifact's requirements, resolved once by the backend that will run it.

    ``requirements`` are the merged requirements as asked (config defaults under the artifact's
    own), sorted: the grouping key and what people see. ``options`` are the backend's own
    directives (for Slurm: validated ``(option, value)`` pairs, value None for a bare flag).
    The typed fields are what every backend understands: CPUs and GPUs per task, memory, the
    time limit and the per-array throttle.
    """

    requirements: tuple[tuple[str, Scalar], ...]
    options: tuple[tuple[str, str | None], ...] = ()
    cpus: int = 1
    gpus: int = 0
    mem_mb: int | None = None
    time_s: int | None = None
    max_parallel: int | None = None
    checkpoint_before_s: int | None = None  # ask for a signal this long before the time limit
    checkpoint_signal: str = "USR2"
    max_requeues: int = 3  # after a checkpoint signal, requeue at most this many times
    pack: int = 1  # artifacts built one after the other by one task (see plan/packs.py)
    pack_time_s: int | None = None  # the pack's own time limit (default: pack × time)

    def summary(self) -> str:
        """``k=v k=v`` of the requirements, for plans and messages."""
        return " ".join(f"{k}={v}" for k, v in self.requirements) or "(no requirements)"

    def option_words(self) -> list[str]:
        """The backend's options as command-line words (``--name=value`` or ``--name``)."""
        return [option_word(o) for o in self.options]


def option_word(option: tuple[str, str | None]) -> str:
    """``--name=value`` (or ``--name``), unquoted: an option as a person would type it."""
    name, value = option
    return f"--{name}" if value is None else f"--{name}={value}"


# -- the framework's own keys, and requirement checks every backend shares ---------------------
THROTTLE_KEY = "max_parallel"
CHECKPOINT_KEYS = ("checkpoint_before", "checkpoint_signal", "max_requeues")
PACK_KEYS = ("pack", "pack_time")  # artifacts per array task, and that task's time limit
# Framework requirements: read into Resources, never passed to a scheduler as options.
FRAMEWORK_KEYS = (THROTTLE_KEY, *CHECKPOINT_KEYS, *PACK_KEYS)
# SIGUSR1 is claimed by NCCL's and some frameworks' own handlers (PyTorch Lightning requeues on
# it); SIGTERM is what Slurm sends at the limit and on cancel, so it cannot mean "checkpoint".
SIGNALS = ("USR2", "USR1", "URG", "INT", "HUP")
_GPU_COUNT = re.compile(r"(?:[A-Za-z0-9_.:-]+:)?(\d+)")
_MEM = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)B?", re.I)
_MEM_UNIT_MB = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024, "": 1}  # Slurm: bare = MB


def freeze_requirements(requirements: object, where: str) -> tuple[tuple[str, Scalar], ...]:
    """Check a requirements mapping (str keys, scalar values) and return it sorted."""
    if not isinstance(requirements, Mapping):
        raise DefinitionError(f"{where}: get_requirements() must return a dict, got "
                              f"{type(requirements).__name__}")
    for key, value in requirements.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
            raise DefinitionError(f"{where}: requirement {key!r} = {value!r:.60} must be a str "
                                  "key with a str, int, float or bool value")
    return tuple(sorted(requirements.items()))


def parse_duration_s(text: str) -> int | None:
    """Seconds in a Slurm time string (``30``, ``4:00``, ``12:00:00``, ``1-00:00:00``,
    ``2-12``); None for ``UNLIMITED``/``INFINITE``. Raises ValueError for anything else."""
    value = text.strip()
    if value.upper() in ("UNLIMITED", "INFINITE"):
        return None
    days, sep, rest = value.rpartition("-")
    parts = rest.split(":")
    if (sep and not days.isdigit()) or not 1 <= len(parts) <= 3 or not all(
            p.isdigit() for p in parts):
        raise ValueError(f"not a Slurm time: {text!r} (forms: M, M:S, H:M:S, D-H, D-H:M, "
                         "D-H:M:S, UNLIMITED)")
    nums = [int(p) for p in parts]
    if days:  # d-h, d-h:m, d-h:m:s
        h, m, s = (nums + [0, 0])[:3]
        return ((int(days) * 24 + h) * 60 + m) * 60 + s
    if len(nums) == 1:  # minutes
        return nums[0] * 60
    if len(nums) == 2:  # minutes:seconds
        return nums[0] * 60 + nums[1]
    return (nums[0] * 60 + nums[1]) * 60 + nums[2]


def _count(key: str, value: Scalar, where: str, minimum: int, strings: bool = True) -> int:
    """An integer requirement (a string of digits too, as Slurm accepts), at least ``minimum``."""
    if strings and isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DefinitionError(f"{where}: requirement {key!r} = {value!r:.40} must be an "
                              f"integer >= {minimum}")
    return value


def _gpus(value: Scalar, where: str) -> int:
    """The GPU count of ``gpus``: an int, or a string like ``4`` or ``A100:4``."""
    if isinstance(value, str):
        match = _GPU_COUNT.fullmatch(value.strip())
        if not match:
            raise DefinitionError(f"{where}: requirement 'gpus' = {value!r:.40} is not a GPU "
                                  "count like 4 or 'A100:4'")
        return int(match.group(1))
    return _count("gpus", value, where, 0)


def mem_mb(value: Scalar, where: str) -> int:
    """Megabytes in a ``mem`` requirement: an int or float means GB (the friendly unit); a
    string follows Slurm (``4000M``, ``64G``; bare = MB). Errors name ``where``."""
    if isinstance(value, bool):
        raise DefinitionError(f"{where}: requirement 'mem' expects a size, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise DefinitionError(f"{where}: requirement 'mem' = {value!r} is not a size in GB")
        return math.ceil(value * 1024)
    match = _MEM.fullmatch(value.strip())
    if not match:
        raise DefinitionError(f"{where}: requirement 'mem' = {value!r:.40} is not a size like "
                              "64 (GB), '64G' or '4000M'")
    return math.ceil(float(match.group(1)) * _MEM_UNIT_MB[match.group(2).upper()])


def _time_s(value: Scalar, where: str) -> int | None:
    """Seconds in ``time`` (a Slurm time, or minutes as an int); None for UNLIMITED."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DefinitionError(f"{where}: requirement 'time' = {value!r:.40} must be a Slurm "
                              "time like '4:00:00' or '1-00:00:00', or minutes as an int")
    try:
        return parse_duration_s(str(value))
    except ValueError:
        raise DefinitionError(f"{where}: requirement 'time' = {value!r:.40} is not a time like "
                              "'4:00:00', '1-00:00:00' or '30' (minutes)") from None


def common_resources(requirements: Mapping[str, Scalar], where: str,
                     options: Sequence[tuple[str, str | None]] = ()) -> Resources:
    """The typed fields every backend understands, read from checked requirements."""
    reqs = freeze_requirements(requirements, where)
    get = dict(reqs).get
    cpus = get("cpus", get("cpus_per_task", get("cpus-per-task")))
    gpus, mem, time, throttle = get("gpus"), get("mem"), get("time"), get(THROTTLE_KEY)
    before, signal, requeues = (get(k) for k in CHECKPOINT_KEYS)
    pack, pack_time = (get(k) for k in PACK_KEYS)
    return Resources(
        requirements=reqs,
        options=tuple(options),
        cpus=1 if cpus is None else _count("cpus", cpus, where, 1),
        gpus=0 if gpus is None else _gpus(gpus, where),
        mem_mb=None if mem is None else mem_mb(mem, where),
        time_s=None if time is None else _time_s(time, where),
        max_parallel=(None if throttle is None
                      else _count(THROTTLE_KEY, throttle, where, 1, strings=False)),
        checkpoint_before_s=None if before is None else _before_s(before, where),
        checkpoint_signal=_signal(signal, where),
        max_requeues=3 if requeues is None else _count("max_requeues", requeues, where, 0,
                                                        strings=False),
        pack=1 if pack is None else _count("pack", pack, where, 1),
        pack_time_s=None if pack_time is None else _pack_time_s(pack_time, where),
    )


def _before_s(value: Scalar, where: str) -> int:
    """``checkpoint_before``: seconds (an int) or a time string like ``5:00``; at least 1 s."""
    seconds = (value if isinstance(value, int) and not isinstance(value, bool)
               else _time_s(value, where) if isinstance(value, str) else None)
    if seconds is None or seconds < 1:
        raise DefinitionError(f"{where}: requirement 'checkpoint_before' = {value!r:.40} must "
                              "be seconds (an int, e.g. 300) or a time like '5:00' (M:S)")
    return seconds


def _pack_time_s(value: Scalar, where: str) -> int:
    """``pack_time``: a Slurm time like ``2:00:00`` (or minutes as an int), not UNLIMITED."""
    try:
        seconds = (parse_duration_s(str(value))
                   if isinstance(value, (str, int)) and not isinstance(value, bool) else None)
    except ValueError:
        seconds = None
    if seconds is None or seconds < 1:
        raise DefinitionError(f"{where}: requirement 'pack_time' = {value!r:.40} must be a "
                              "time like '2:00:00' (the whole pack's limit), not UNLIMITED")
    return seconds


def _signal(value: Scalar | None, where: str) -> str:
    """The checkpoint signal's name without ``SIG`` (default USR2), one of ``SIGNALS``."""
    name = "USR2" if value is None else str(value).upper().removeprefix("SIG")
    if name not in SIGNALS:
        raise DefinitionError(f"{where}: requirement 'checkpoint_signal' = {value!r:.40} must be "
                              f"one of {', '.join(SIGNALS)} (default USR2)")
    return name
