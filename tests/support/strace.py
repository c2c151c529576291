"""Syscall faults injected for real with ``strace`` (``-e inject``), around a real command.

``NO_FLOCK`` prefixes an argv so that every ``flock`` of the process (and its children) fails
with ENOSYS, as on Lustre mounted without ``flock``; nothing in the package is edited. strace is a
Debian package (scripts/run-tests.sh installs it); without it the test fails when ``CI=true``
and is skipped (loudly) otherwise.
"""

from __future__ import annotations

import os
import shutil

import pytest

STRACE = shutil.which("strace")


def no_flock(errno_name: str = "ENOSYS") -> list[str]:
    """The argv prefix that runs a command with ``flock`` failing as ``errno_name``."""
    if STRACE is None:
        message = "strace is not installed (apt-get install strace): cannot inject flock faults"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return [STRACE, "-f", "-qq", "-o", "/dev/null", "-e", "trace=flock",
            "-e", f"inject=flock:error={errno_name}"]


NO_FLOCK_WRAPPER = '''#!/bin/sh
# The interpreter of config.json's "python", run with every flock failing (tests/support/strace.py)
exec {strace} -f -qq -o /dev/null -e trace=flock -e inject=flock:error={errno} {python} "$@"
'''


def no_flock_python(path: str, python: str, errno_name: str = "ENOSYS") -> str:
    """Write an executable wrapper at ``path`` that execs ``python`` under ``no_flock``."""
    prefix = no_flock(errno_name)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(NO_FLOCK_WRAPPER.format(strace=prefix[0], errno=errno_name, python=python))
    os.chmod(path, 0o755)
    return path
