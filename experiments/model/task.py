"""The ``Task`` builder: ``construct`` records steps here; nothing runs at planning time.

Steps are plain, serialisable records that the worker executes later on the building machine.
"""

from __future__ import annotations

import base64
import os
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import DefinitionError
from ..worker.specs import describe_step

_KW_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class CreateFile:
    """Write ``content`` to ``path`` atomically (bytes are kept base64 in JSON)."""

    path: str
    content_b64: str
    kind: str = "create_file"

    def describe(self) -> str:
        return describe_step(vars(self))  # the text the worker logs, too


@dataclass(frozen=True)
class RunCommand:
    """Run ``command`` with bash in the code directory; output goes to the task's log."""

    command: str
    kind: str = "run_command"

    def describe(self) -> str:
        return describe_step(vars(self))  # the text the worker logs, too


@dataclass(frozen=True)
class Upload:
    """Copy a local file or directory to a remote URL (any fsspec protocol)."""

    src: str
    url: str
    kind: str = "upload"

    def describe(self) -> str:
        return describe_step(vars(self))  # the text the worker logs, too


@dataclass(frozen=True)
class Download:
    """Copy a remote object or prefix to a local path, atomically."""

    url: str
    dst: str
    kind: str = "download"

    def describe(self) -> str:
        return describe_step(vars(self))  # the text the worker logs, too


def _run_command_step(command: str) -> RunCommand:
    """``RunCommand(command)``, made without the frozen dataclass's ``__init__`` (two
    ``object.__setattr__`` calls: a fifth of recording a step, for a million artifacts)."""
    step = _new(RunCommand)
    fields = step.__dict__  # same order as __init__ gives: vars() and the specs see no change
    fields["command"] = command
    fields["kind"] = "run_command"
    return step


_new = object.__new__
_GOOD_KEYS: set[str] = set()  # kwargs keys already checked against _KW_KEY

Step = CreateFile | RunCommand | Upload | Download
_STEP_TYPES: dict[str, type] = {
    "create_file": CreateFile, "run_command": RunCommand, "upload": Upload, "download": Download,
}


def step_to_dict(step: Step) -> dict[str, str]:
    """The JSON form of a step (its fields in order; all are strings, so a copy will do)."""
    return dict(vars(step))


def step_from_dict(data: Mapping[str, str]) -> Step:
    """Rebuild a step from its JSON form."""
    return _STEP_TYPES[data["kind"]](**data)  # type: ignore[no-any-return]


class Task:
    """What ``construct(builder)`` receives: paths of the build and methods that record steps.

    Relative paths resolve inside the artifact's own directory; file steps may not write
    outside it, so no parameter value can make a build write elsewhere.

    ``code_path`` is the *live* code directory (planning runs before the launch freezes the
    code). With code snapshots on (the default), commands run in the snapshot, not here: in a
    command, refer to code by relative paths (the command's working directory) or
    ``$EXPERIMENTS_CODE_PATH``, so queued tasks never see later edits.
    """

    def __init__(self, *, artifact_path: str, code_path: str, relpath: str,
                 gs_path: str | None = None, where: str = "artifact") -> None:
        self.artifact_path = artifact_path
        self.code_path = code_path
        self.relpath = relpath
        self.gs_path = gs_path
        self._directory: str | None = None
        self.steps: list[Step] = []
        self._where = where

    @property
    def directory(self) -> str:
        """The artifact's own directory (made on first use: most builders never ask)."""
        if self._directory is None:
            self._directory = posixpath.normpath(posixpath.join(self.artifact_path,
                                                                self.relpath))
        return self._directory

    # -- files ----------------------------------------------------------------------------
    def create_file(self, path: str, content: str | bytes) -> None:
        """Record writing ``content`` (text is UTF-8 encoded) to ``path``."""
        if isinstance(content, str):
            data = content.encode("utf-8")
        elif isinstance(content, (bytes, bytearray)):
            data = bytes(content)
        else:
            raise DefinitionError(f"{self._where}: create_file({path!r}) needs str or bytes "
                                  f"content, got {type(content).__name__}")
        target = self._local(path, "create_file")
        self.steps.append(CreateFile(target, base64.b64encode(data).decode("ascii")))

    def create_yaml_file(self, path: str, data: Any) -> None:
        """Record writing ``data`` as YAML (safe dump: plain types only) to ``path``."""
        import yaml  # imported here: the worker never needs it

        try:
            text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        except yaml.YAMLError as exc:
            raise DefinitionError(f"{self._where}: create_yaml_file({path!r}) got data YAML "
                                  f"cannot represent safely ({exc}); use dicts, lists, str, "
                                  "numbers, bools and None") from None
        self.create_file(path, text)

    # -- commands -------------------------------------------------------------------------
    def run_command(self, cmd: str, kwargs: Mapping[str, Any] | None = None,
                    kwformat: str = "--{k}={v}") -> None:
        """Record a shell command; each kwargs value is shell-quoted and appended."""
        if not isinstance(cmd, str) or not cmd.strip() or "\x00" in cmd:
            raise DefinitionError(f"{self._where}: run_command needs a non-empty command "
                                  f"string without NUL bytes, got {cmd!r:.80}")
        if kwargs:
            parts = [cmd]
            for key, value in kwargs.items():
                parts.append(self._format_kwarg(key, value, kwformat))
            cmd = " ".join(parts)
        self.steps.append(_run_command_step(cmd))

    def _format_kwarg(self, key: Any, value: Any, kwformat: str) -> str:
        if key not in _GOOD_KEYS:
            if not isinstance(key, str) or not _KW_KEY.fullmatch(key):
                raise DefinitionError(f"{self._where}: run_command kwargs key {key!r} must be "
                                      "a plain name (letters, digits, _ . -)")
            if len(_GOOD_KEYS) < 10_000:
                _GOOD_KEYS.add(key)
        text = str(value)
        if "\x00" in text:
            raise DefinitionError(f"{self._where}: run_command kwargs value for {key!r} "
                                  "contains a NUL byte, which no command line can carry")
        if kwformat == "--{k}={v}":  # the default, formatted without parsing the template
            return f"--{key}={shlex.quote(text)}"
        try:
            return kwformat.format(k=key, v=shlex.quote(text))
        except (KeyError, IndexError, ValueError) as exc:
            raise DefinitionError(f"{self._where}: kwformat {kwformat!r} is invalid ({exc}); "
                                  "use {k} and {v}, e.g. '--{k}={v}'") from None

    # -- remote storage -------------------------------------------------------------------
    def upload(self, src: str, url: str) -> None:
        """Record copying a local file or directory to ``url`` (gs://, s3://, file://, ...)."""
        self.steps.append(Upload(self._local(src, "upload", inside=False), _url(url, self)))

    def download(self, url: str, dst: str) -> None:
        """Record copying ``url`` (object or prefix) to a local path inside the artifact."""
        self.steps.append(Download(_url(url, self), self._local(dst, "download")))

    def upload_to_gs(self, local_path: str, gs_url: str) -> None:
        """Record an upload to Google Cloud Storage (``gs://bucket/prefix``)."""
        self.upload(local_path, _gs(gs_url, self))

    def download_from_gs(self, gs_url: str, local_path: str) -> None:
        """Record a download from Google Cloud Storage (``gs://bucket/object``)."""
        self.download(_gs(gs_url, self), local_path)

    # -- helpers --------------------------------------------------------------------------
    def _local(self, path: str, what: str, inside: bool = True) -> str:
        if not isinstance(path, str) or not path or "\x00" in path:
            raise DefinitionError(f"{self._where}: {what} needs a non-empty path without NUL "
                                  f"bytes, got {path!r:.80}")
        full = posixpath.normpath(posixpath.join(self.directory, os.fspath(path)))
        if inside and not (full == self.directory or full.startswith(self.directory + "/")):
            raise DefinitionError(
                f"{self._where}: {what}({path!r}) would write outside the artifact's directory "
                f"{self.directory}; use a path relative to it (or under it)"
            )
        return full


def _url(url: str, task: Task) -> str:
    if not isinstance(url, str) or "://" not in url or "\x00" in url or "\n" in url:
        raise DefinitionError(f"{task._where}: {url!r:.80} is not a storage URL; write it as "
                              "scheme://bucket/path, e.g. gs://my-bucket/models/run1")
    return url


def _gs(url: str, task: Task) -> str:
    if not isinstance(url, str) or not url.startswith("gs://"):
        raise DefinitionError(f"{task._where}: {url!r:.80} is not a gs:// URL; write it as "
                              "gs://bucket/path, or use builder.upload/download for others")
    return url
