"""The public API (``experiments.__all__``) and the worker's light import footprint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import experiments

PUBLIC = {
    "Artifact", "ArtifactSet", "Task", "Executor", "SlurmExecutor", "LocalExecutor",
    "ExperimentsError", "DefinitionError", "PlanError", "ConfigError", "SubmissionError",
    "SchedulerQueryError", "StoreError", "StorageError",
}
ERRORS = {"DefinitionError", "PlanError", "ConfigError", "SubmissionError",
          "SchedulerQueryError", "StoreError", "StorageError"}
HEAVY = {"yaml", "click", "rich", "filelock"}
REPO = Path(__file__).resolve().parents[2]
# Every module of the worker's folder but __main__ (it runs the worker; see the test below).
WORKER_MODULES = sorted(p.stem for p in (REPO / "experiments" / "worker").glob("*.py")
                        if p.stem not in ("__init__", "__main__"))


def test_all_matches_public_names() -> None:
    assert set(experiments.__all__) == PUBLIC
    assert len(experiments.__all__) == len(PUBLIC)
    assert dir(experiments) == sorted(PUBLIC)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_name_imports(name: str) -> None:
    code = f"from experiments import {name}; print({name}.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == name
    assert getattr(experiments, name).__name__ == name


def test_unknown_attribute_is_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        experiments.Nope  # noqa: B018


def test_error_tree() -> None:
    root = experiments.ExperimentsError
    for name in ERRORS:
        assert issubclass(getattr(experiments, name), root)
    assert issubclass(experiments.DefinitionError, TypeError)


def _imported_modules(argv: list[str]) -> tuple[int, set[str]]:
    res = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                         text=True, timeout=30)
    mods = set()
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            mods.add(line.rsplit("|", 1)[1].strip())
    return res.returncode, mods


def test_worker_imports_no_heavy_packages() -> None:
    code, mods = _imported_modules(["-m", "experiments.worker"])
    assert code == 2
    assert {"experiments", "experiments.worker.specs", "experiments._atomic"} <= mods
    assert {m.split(".")[0] for m in mods} & HEAVY == set()


def test_plain_import_is_light() -> None:
    code, mods = _imported_modules(["-c", "import experiments"])
    assert code == 0
    assert "experiments" in mods
    assert {m.split(".")[0] for m in mods} & HEAVY == set()


@pytest.mark.parametrize("module", ["", *WORKER_MODULES])
def test_every_worker_module_needs_only_the_standard_library(module: str) -> None:
    """The worker runs without ``site`` (``-S``): everything its modules import, however
    deep, must be the standard library or this package."""
    name = "experiments.worker" + (f".{module}" if module else "")
    code = (f"import sys; sys.path.insert(0, sys.argv[1]); import {name}; "
            "print(' '.join(sorted(sys.modules)))")
    res = subprocess.run([sys.executable, "-S", "-c", code, str(REPO)], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    loaded = {m.split(".")[0] for m in res.stdout.split()}
    assert name in res.stdout.split()
    assert loaded - set(sys.stdlib_module_names) - {"experiments", "__main__"} == set()


def test_a_verb_loads_only_its_own_modules() -> None:
    """``experiments.verbs`` loads each verb when first asked for (a drylaunch need not import
    wait, accept or the results table); a module named like its verb is bound as the verb, as
    when the package imported every verb at once."""
    code = ("import sys; import experiments.verbs.launch as m; "
            "print(' '.join(sorted(n for n in sys.modules if n.startswith('experiments.verbs.'))));"
            "from experiments import verbs; import experiments.verbs.wait; "
            "print(callable(m), callable(verbs.launch), callable(verbs.wait), "
            "verbs.gc_snapshots.__module__)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    first, second = res.stdout.splitlines()
    loaded = set(first.split())
    assert "experiments.verbs.launch" in loaded
    assert not loaded & {"experiments.verbs.accept", "experiments.verbs.results",
                         "experiments.verbs.invalidate", "experiments.verbs.inspect",
                         "experiments.verbs.wait"}
    assert second.split() == ["True", "True", "True", "experiments.verbs.code_snapshots"]
