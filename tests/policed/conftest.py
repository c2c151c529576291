"""Fixtures for running the experiment's CLI as an unprivileged test user."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Third-party packages the CLI imports (click, rich and theirs; jinja2 for the report).
PACKAGES = ("click", "rich", "pygments", "markdown_it", "mdurl", "jinja2", "markupsafe",
            "filelock")


@pytest.fixture(scope="session")
def user_python() -> Iterator[tuple[str, str]]:
    """(a Python every user can run, a folder of copies of the CLI's packages for it): the
    test users cannot execute the interpreter the suite runs under when it lives in root's
    home (mode 700)."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    assert python, "these tests need a system python3 that unprivileged users can run"
    folder = tempfile.mkdtemp(prefix="experiments-userpy-")
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec and spec.submodule_search_locations, f"{name} is not installed"
        shutil.copytree(spec.submodule_search_locations[0], Path(folder) / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["chmod", "-R", "a+rX", folder], check=True)
    os.chmod(folder, 0o755)
    yield python, folder
    shutil.rmtree(folder, ignore_errors=True)
