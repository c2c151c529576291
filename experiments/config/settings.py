"""``config.json``: the user's file over the site's over built-in defaults, validated, merged
under requirements.

Layers (see :mod:`experiments.config.layers` for how they merge): the built-in defaults (the
seed README's ``config.json``), then the site file — ``$EXPERIMENTS_SITE_CONFIG`` when set (an
empty value means none), else ``/etc/experiments/config.json`` when it exists — then the user's
``~/.experiments/config.json``. Each file holds the same keys and is validated on its own, so an
error names the file and the key. The user's file is created on first use holding ``{}`` (the
user's changes: none yet), so a new user inherits the site. A user file identical to the seed's
old first-use content was never edited: it changes nothing, and the site's values apply.

``EXPERIMENTS_HOME`` relocates the whole folder; it must be a folder (or not exist yet), else a
one-line ``ConfigError`` says so. A path in the config that starts with ``~/.experiments`` means
"inside the experiments home", so a relocated home stays self-contained.

``log_directory`` may be relative: it is resolved against the folder of the config file (not the
directory ``launch`` runs in), so every command finds the same logs. Resolved paths are absolute.

``umask`` must keep files private to the owner or the group: masks that leave files
world-writable (``mask & 0o002 == 0``, e.g. ``"000"`` or ``"020"``) are refused. Lock files follow
the mask too (``lock_mode``) and are never group- or world-writable.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _atomic
from ..errors import ConfigError
from ..worker import task_setup
from . import file_trust, requirement_keys
from . import remotes as targets
from .layers import Layer, Merged, merge, without_nulls

DEFAULT_CONFIG: dict[str, Any] = {
    "log_directory": "~/.experiments/logs",
    "default_slurm_args": {
        "gpu": {"time": "24:00:00", "cpus": 8, "requeue": True},
        "cpu": {"time": "4:00:00", "cpus": 1},
    },
}
# Keys a config may hold beyond the seed's two; each has a default.
OPTIONAL_KEYS = {
    "default_partition": "partition whose defaults apply when an artifact names none",
    "umask": "octal permission mask for files and folders we create, e.g. '077' or '027'",
    "python": "Python interpreter that runs the worker on the compute nodes",
    "max_running": "at most this many tasks of the project run at once, across its launches "
                   "(launch --max-running N: of one launch instead): an int for every "
                   'project, or {"<project>": int, ...} (others unlimited)',
    "local": 'this machine\'s capacity for --local runs, e.g. {"cpus": 64, "gpus": 8, '
             '"mem_gb": 512}; a key left out is detected',
    "code_snapshots": "true (default): tasks run in a frozen snapshot of code_path; false: live",
    "snapshot_excludes": "glob patterns left out of code snapshots (replaces the defaults)",
    "snapshot_max_mb": "largest code snapshot in MB (default 100); a larger one stops launch",
    "stale_on_code_change": "true: status calls results built from other code stale (default "
                            "false)",
    "trusted_users": "other users whose .done markers count as built (shared artifact roots)",
    "trusted_groups": "groups whose .done markers count as built (shared artifact roots)",
    "setup": "shell lines run before every task (a partition's own go in default_slurm_args)",
    "submit_limit_check_above": "launches with more array tasks than this (default 1000) read "
                                "the user's submit limits first and pack themselves to fit; 0: "
                                "every launch",
    "relays": "false: never queue relay jobs (a site whose compute nodes may not submit); a "
              "launch past the submit limit then stops half-way, as a sweep after each rung",
    "escalation": "opt-in policy for `launch --retry-failed`, e.g. "
                  '{"TIMEOUT": {"time": 2}, "OUT_OF_MEMORY": {"mem": 2}, '
                  '"caps": {"time": "3-00:00:00", "mem": "512G"}}',
    "remotes": "clusters reached over SSH for `--on NAME`: "
               '{"NAME": {"ssh": HOST, "python": PATH, "code_root": PATH, '
               '"artifact_path": PATH}}',
}
ESCALATABLE = ("time", "mem")
SITE_ENV = "EXPERIMENTS_SITE_CONFIG"
SITE_PATH = "/etc/experiments/config.json"
EVERY_PARTITION = "*"  # default_slurm_args entry that applies under every partition's own
FIRST_USE: dict[str, Any] = {}  # the user's file on first use: no changes yet
# Launches with at most this many array tasks skip reading the submit limits (no sacctmgr).
SUBMIT_LIMIT_CHECK_ABOVE = 1000
# The keys of "local" and the smallest value each accepts.
LOCAL_KEYS = {"cpus": 1, "gpus": 0, "mem_gb": 0}


def home() -> Path:
    """The experiments home: ``$EXPERIMENTS_HOME`` or ``~/.experiments``, as an absolute path.

    Raises ``ConfigError`` (one line, saying how to fix it) when the home is not usable as a
    folder, instead of letting a later ``mkdir`` or ``open`` fail with a traceback.
    """
    env = os.environ.get("EXPERIMENTS_HOME")
    path = (Path(env) if env else Path("~/.experiments")).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ConfigError(_home_problem(env, path, "is a file, not a folder"))
    return path


def _home_problem(env: str | None, path: Path, what: str) -> str:
    if env:
        return f"EXPERIMENTS_HOME={env} {what}; point it at a folder"
    return (f"{path} {what}; move it away, or set EXPERIMENTS_HOME to a folder for "
            "experiments to use")


def lock_mode(umask: int) -> int:
    """The mode of lock files we create: ``umask`` applied, never group- or world-writable.

    filelock applies an explicit mode with ``fchmod`` (the process umask does not apply), so a
    lock created with its usual 0o666 would let any user take or hold our locks.
    """
    return 0o666 & ~umask & ~0o022


def expand_path(value: str) -> Path:
    """Expand a configured path; ``~/.experiments`` maps to the (maybe relocated) home."""
    prefix = "~/.experiments"
    if value == prefix or value.startswith(prefix + "/"):
        return home() / value[len(prefix) + 1:]
    return Path(value).expanduser()


@dataclass(frozen=True)
class SnapshotSettings:
    """The config keys about code snapshots and staleness (see ``OPTIONAL_KEYS``).

    ``excludes`` of None means the snapshot module's defaults.
    """

    enabled: bool = True
    excludes: tuple[str, ...] | None = None
    max_bytes: int | None = None
    stale_on_code_change: bool = False


@dataclass(frozen=True)
class Config:
    """The validated configuration."""

    path: Path
    log_directory: Path
    default_slurm_args: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    default_partition: str | None = None
    umask: int = 0o077
    python: str | None = None
    max_running: int | Mapping[str, int] | None = None
    local: Mapping[str, float] = field(default_factory=dict)

    def max_running_for(self, project: str) -> int | None:
        """The concurrency budget of ``project``, across its launches (None: no budget)."""
        if isinstance(self.max_running, Mapping):
            return self.max_running.get(project)
        return self.max_running
    snapshots: SnapshotSettings = field(default_factory=lambda: SnapshotSettings())
    trusted_uids: tuple[int, ...] = ()  # from trusted_users
    trusted_gids: tuple[int, ...] = ()  # from trusted_groups
    setup: tuple[str, ...] = ()
    escalation: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    remotes: Mapping[str, targets.Remote] = field(default_factory=dict)
    submit_limit_check_above: int = SUBMIT_LIMIT_CHECK_ABOVE
    relays: bool = True  # false: no relay jobs (compute nodes may not submit here)

    def resolve_requirements(self, requirements: Mapping[str, Any]) -> dict[str, Any]:
        """The artifact's requirements merged over its partition's configured defaults."""
        partition = requirements.get("partition") or self.default_partition
        defaults = {**self.default_slurm_args.get(EVERY_PARTITION, {}),
                    **self.default_slurm_args.get(str(partition), {})}
        merged: dict[str, Any] = {k: v for k, v in defaults.items()
                                  if k != task_setup.KEY}  # setup lines are not requirements
        merged.update(requirements)
        if partition:
            merged["partition"] = partition
        return merged

    def setup_for(self, partition: object) -> tuple[str, ...]:
        """Setup lines for a task on ``partition``: the global ones, those of ``"*"`` (every
        partition), then the partition's."""
        name = partition or self.default_partition
        every = self.default_slurm_args.get(EVERY_PARTITION, {}).get(task_setup.KEY, ())
        own = () if name == EVERY_PARTITION else (
            self.default_slurm_args.get(str(name), {}).get(task_setup.KEY, ()))
        return (*self.setup, *every, *own)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_json(text: str, where: str) -> Any:
    """Parse JSON, treating a duplicate key as an error (never a silent override)."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise ConfigError(f"{where} is not valid JSON ({exc}); fix it, or delete it to get "
                          "the default back") from None


def load() -> Config:
    """Read every layer (creating the user's file on first use), validate, merge."""
    return from_layers(layers())


def from_layers(found: tuple[Layer, ...]) -> Config:
    """The validated configuration of ``found`` (each file already checked on its own)."""
    user = found[-1]
    assert user.path is not None
    return validate(merge(found).data, user.path)


def merged() -> Merged:
    """The merged settings with where each value came from (for ``config show``); the files
    are validated first, so an error names the file and the key."""
    found = layers()
    from_layers(found)
    return merge(found)


def layers() -> tuple[Layer, ...]:
    """Built-in defaults, the site file (if any), the user's file: each read and validated."""
    site = site_path()
    user = home() / "config.json"
    if not user.exists():
        _create_default(user)
    out = [Layer("built-in", None, DEFAULT_CONFIG)]
    if site is not None:
        out.append(Layer("site", site, _site_data(site)))
    file_trust.check(user, "your config", trust_owner=False)
    data = _read(user)
    validate(without_nulls(data), user)
    if data == DEFAULT_CONFIG:
        out.append(Layer("user", user, {}, note="the unedited first-use default of earlier "
                         "versions: it changes nothing"))
    else:
        out.append(Layer("user", user, data))
    return tuple(out)


def site_path() -> Path | None:
    """The site file: ``$EXPERIMENTS_SITE_CONFIG`` (must exist; empty: none), else
    ``/etc/experiments/config.json`` when it exists."""
    env = os.environ.get(SITE_ENV)
    if env is not None:
        if not env:
            return None
        path = Path(env).expanduser().absolute()
        if not path.is_file():
            raise ConfigError(f"{SITE_ENV}={env} names no file; point it at the site's "
                              "config.json, or set it empty for none")
        return path
    default = Path(SITE_PATH)
    return default if default.is_file() else None


def _site_data(path: Path) -> dict[str, Any]:
    """The site file's settings, checked: only trusted accounts can change it (its setup lines
    run in every user's jobs: :mod:`.file_trust`), valid on its own; a relative log_directory
    is taken from its folder."""
    file_trust.check(path, "the site config", trust_owner=True)
    data = _read(path)
    validate(without_nulls(data), path)
    log_dir = data.get("log_directory")
    if isinstance(log_dir, str):
        data["log_directory"] = str(_log_directory(log_dir, path))
    return data


def _read(path: Path) -> dict[str, Any]:
    """A config file's parsed JSON; unreadable or not UTF-8 is a ConfigError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; fix it, or delete it to get the "
                          "default back") from None
    data = parse_json(text, str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object, like the default config")
    return dict(data)


def _create_default(path: Path) -> None:
    """Write the user's config on first use (no changes yet: the site and built-in defaults
    apply); an unusable home is a one-line ConfigError."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _atomic.write_json(str(path), FIRST_USE, mode=0o600, indent=2)
    except FileExistsError:
        if not path.parent.is_dir():  # a file somewhere on the way
            raise ConfigError(_home_problem(os.environ.get("EXPERIMENTS_HOME"), path.parent,
                                            "is not usable as a folder")) from None
    except OSError as exc:
        raise ConfigError(_home_problem(os.environ.get("EXPERIMENTS_HOME"), path.parent,
                                        f"cannot be used ({exc.strerror})")) from None


def validate(data: Any, path: Path) -> Config:
    """Check every key and value of a parsed config; errors name the key and the file."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object, like the default config")
    known = {"log_directory", "default_slurm_args", *OPTIONAL_KEYS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; valid keys are "
                          f"{', '.join(sorted(known))}")
    log_dir = data.get("log_directory", DEFAULT_CONFIG["log_directory"])
    if not isinstance(log_dir, str) or not log_dir or "\x00" in log_dir or "\n" in log_dir:
        raise ConfigError(f"{path}: log_directory must be a path string, got {log_dir!r}")
    slurm_args = data.get("default_slurm_args", {})
    if not isinstance(slurm_args, dict) or not all(
        isinstance(v, dict) for v in slurm_args.values()
    ):
        raise ConfigError(f"{path}: default_slurm_args must map partition names to objects of "
                          'requirements, e.g. {"gpu": {"time": "24:00:00"}}')
    requirement_keys.check_keys(slurm_args, path)  # a typo fails here, not at sbatch
    partition = data.get("default_partition")
    if partition is not None and not isinstance(partition, str):
        raise ConfigError(f"{path}: default_partition must be a string")
    python = data.get("python")
    if python is not None and (not isinstance(python, str) or not python.startswith("/")):
        raise ConfigError(f"{path}: python must be an absolute path to an interpreter")
    return Config(path, _log_directory(log_dir, path), slurm_args, partition,
                  _umask(data.get("umask", f"{default_umask():03o}"), path), python,
                  _max_running(data.get("max_running"), path),
                  local=_local(data.get("local", {}), path),
                  snapshots=_snapshot_settings(data, path),
                  trusted_uids=_ids(data.get("trusted_users", []), "trusted_users", path),
                  trusted_gids=_ids(data.get("trusted_groups", []), "trusted_groups", path),
                  setup=_setup(data, path)[0],
                  escalation=_escalation(data.get("escalation", {}), path),
                  remotes=targets.parse(data.get(targets.KEY, {}), path),
                  submit_limit_check_above=_count(data, "submit_limit_check_above", path),
                  relays=_flag(data, "relays", path))


def _max_running(value: Any, path: Path) -> int | dict[str, int] | None:
    """``max_running``: a positive int, or an object mapping project names to positive ints."""
    def positive(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    if value is None or positive(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, dict) and all(isinstance(k, str) and positive(v)
                                       for k, v in value.items()):
        return dict(value)
    raise ConfigError(f"{path}: max_running must be a positive int (every project) or map "
                      'project names to positive ints, e.g. {"my-project": 64}; got '
                      f"{value!r:.60}")


def _count(data: Mapping[str, Any], key: str, path: Path) -> int:
    """A non-negative int setting (its default when absent)."""
    value = data.get(key, SUBMIT_LIMIT_CHECK_ABOVE)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{path}: {key} must be a whole number of array tasks (0 or more), "
                          f"got {value!r:.60}")
    return value


def _flag(data: Mapping[str, Any], key: str, path: Path) -> bool:
    """A true/false setting (true when absent)."""
    if not isinstance(data.get(key, True), bool):
        raise ConfigError(f"{path}: {key} must be true or false, got {data[key]!r:.60}")
    return bool(data.get(key, True))


def _ids(names: Any, key: str, path: Path) -> tuple[int, ...]:
    """Numeric ids of the users (or groups) a trust key names; unknown names are errors."""
    import grp
    import pwd

    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{path}: {key} must be a list of names, e.g. [\"alice\"]")
    out = []
    for name in names:
        try:
            out.append(pwd.getpwnam(name).pw_uid if key == "trusted_users"
                       else grp.getgrnam(name).gr_gid)
        except KeyError:
            raise ConfigError(f"{path}: {key} names {name!r}, which does not exist on this "
                              "machine") from None
    return tuple(out)


def _escalation(value: Any, path: Path) -> dict[str, dict[str, Any]]:
    """``{"TIMEOUT": {"time": 2}, "caps": {"time": "3-00:00:00"}}``: per scheduler state, a
    factor per requirement (time or mem, > 1); ``caps`` bounds each requirement."""
    where = f"{path}: escalation"
    example = ('e.g. {"TIMEOUT": {"time": 2}, "OUT_OF_MEMORY": {"mem": 2}, '
               '"caps": {"time": "3-00:00:00", "mem": "512G"}}')
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object, {example}")
    for state, rule in value.items():
        if not isinstance(rule, dict) or not set(rule) <= set(ESCALATABLE) or not rule:
            raise ConfigError(f"{where}.{state} must map {' or '.join(ESCALATABLE)} to a "
                              f"{'cap' if state == 'caps' else 'factor'}, {example}")
        if state != "caps" and not all(
                isinstance(f, (int, float)) and not isinstance(f, bool) and f > 1
                for f in rule.values()):
            raise ConfigError(f"{where}.{state}: factors must be numbers above 1, {example}")
        if state != "caps" and state != state.upper():
            raise ConfigError(f"{where}: {state!r} must be a Slurm state in capitals such as "
                              "TIMEOUT or OUT_OF_MEMORY")
    return value


def default_umask() -> int:
    """The user's own umask (results readable the way the rest of their files are), but never
    leaving files world-writable and never restricting the owner."""
    current = os.umask(0o077)  # reading the umask means setting it; put it straight back
    os.umask(current)
    return (current & 0o077) | 0o002


def _setup(data: dict[str, Any], path: Path) -> tuple[tuple[str, ...]]:
    """The global setup lines; a partition's own are checked here and read by ``setup_for``."""
    try:
        for name, entry in data.get("default_slurm_args", {}).items():
            if task_setup.KEY in entry:
                task_setup.check_lines(entry[task_setup.KEY],
                                       f"{path}: default_slurm_args.{name}.setup")
        return (task_setup.check_lines(data.get(task_setup.KEY, []), f"{path}: setup"),)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _log_directory(value: str, config_path: Path) -> Path:
    """``value`` expanded (``~``, ``$USER`` and other variables); a relative path is taken
    relative to the config file's folder."""
    expanded = os.path.expandvars(value)
    unset = re.search(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", expanded)
    if unset:
        raise ConfigError(f"{config_path}: log_directory {value!r} uses ${unset.group(1)}, which "
                          "is not set in this environment; set it or write the path out")
    return Path(os.path.normpath(config_path.parent.absolute() / expand_path(expanded)))


def _local(value: Any, path: Path) -> dict[str, float]:
    """The ``local`` capacity: cpus and gpus as integers, mem_gb as a number (each optional)."""
    example = '{"cpus": 64, "gpus": 8, "mem_gb": 512}'
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: local must be an object like {example}")
    out: dict[str, float] = {}
    for key, item in value.items():
        if key not in LOCAL_KEYS:
            raise ConfigError(f"{path}: unknown key local.{key}; valid keys are "
                              f"{', '.join(LOCAL_KEYS)} (e.g. {example})")
        integral = key != "mem_gb"
        ok_type = isinstance(item, int) if integral else isinstance(item, (int, float))
        if isinstance(item, bool) or not ok_type or not item >= LOCAL_KEYS[key] or (
                key == "mem_gb" and not 0 < item < float("inf")):
            kind = "an integer" if integral else "a number of GB"
            raise ConfigError(f"{path}: local.{key} must be {kind} >= {LOCAL_KEYS[key]}"
                              f"{'' if integral else ' (and > 0)'}, got {item!r:.40}")
        out[key] = item
    return out


def _snapshot_settings(data: Mapping[str, Any], path: Path) -> SnapshotSettings:
    """``code_snapshots``, ``snapshot_excludes``, ``snapshot_max_mb``, ``stale_on_code_change``."""
    for key in ("code_snapshots", "stale_on_code_change"):
        if not isinstance(data.get(key, False), bool):
            raise ConfigError(f"{path}: {key} must be true or false, got {data[key]!r}")
    excludes = data.get("snapshot_excludes")
    if excludes is not None and (not isinstance(excludes, list) or not all(
            isinstance(e, str) and e for e in excludes)):
        raise ConfigError(f"{path}: snapshot_excludes must be a list of glob patterns, e.g. "
                          '[".git", "data", "*.ckpt"]')
    max_mb = data.get("snapshot_max_mb")
    if max_mb is not None and (isinstance(max_mb, bool) or not isinstance(max_mb, (int, float))
                               or max_mb <= 0):
        raise ConfigError(f"{path}: snapshot_max_mb must be a positive number of megabytes, "
                          f"got {max_mb!r}")
    return SnapshotSettings(
        enabled=data.get("code_snapshots", True),
        excludes=None if excludes is None else tuple(excludes),
        max_bytes=None if max_mb is None else int(max_mb * 1000**2),
        stale_on_code_change=data.get("stale_on_code_change", False))


def _umask(value: Any, path: Path) -> int:
    try:
        mask = int(str(value), 8)
    except ValueError:
        mask = -1
    if not 0 <= mask <= 0o777 or mask & 0o700:
        raise ConfigError(f"{path}: umask must be an octal string such as '077' (private) or "
                          f"'027' (shared with your group), got {value!r}")
    if not mask & 0o002:
        raise ConfigError(f"{path}: umask {value!r} leaves the files we create world-writable; "
                          "use '027' (shared with your group) or '077' (private)")
    return mask
