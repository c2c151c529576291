"""The shape of the package (issue 22's "done when"): no import cycle, the CLI apart from the
executor, small modules and functions, a short top level, unique file names, exit codes decided
in one place, a worker that imports only what a job's machine surely has, one place for
subprocesses, no machine paths.

The package is parsed once per session (not imported). An edge A → B is any import statement
in A that names module B: at module level, inside a function or under ``if TYPE_CHECKING:``.
``from package import name`` names the submodule ``package.name`` when there is one, else the
submodule the package's ``__init__`` re-exports ``name`` from, else the ``__init__`` itself.
A package's ``__init__`` importing from its own submodules outside a function is a re-export,
not an edge of the package: whoever imports the package whole (``import package``, ``from
parent import package``) depends on those submodules instead. So an ``__init__`` re-exporting
names is not a cycle by itself, and the package a module sits in is no edge of it either.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "experiments"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 50
MAX_TOP_LEVEL_MODULES = 15
# What the worker may import from the package besides experiments/worker/ itself: the modules a
# job's machine needs to build an artifact, each importing only the standard library at
# module level (checked below).
WORKER_SAFE = {
    "experiments", "experiments._atomic", "experiments._faults", "experiments._proc",
    "experiments.errors", "experiments.paths", "experiments.storage",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@dataclass(frozen=True)
class Import:
    """One import statement: the package modules it names and what it names outside."""

    node: ast.Import | ast.ImportFrom
    targets: frozenset[str]  # modules of the package
    top_level: bool  # at module level, not inside a function or TYPE_CHECKING
    outside: frozenset[str]  # top-level names of imports from outside the package


@dataclass(frozen=True)
class Module:
    """A parsed module of the package."""

    name: str
    path: Path
    tree: ast.Module
    lines: int
    imports: tuple[Import, ...]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, and whether it runs when the module is imported."""

    def visit(node: ast.AST, top: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, top
            inner = top and not isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not (
                isinstance(child, ast.If) and _is_type_checking(child))
            yield from visit(child, inner)

    yield from visit(tree, True)


def _longest_module(dotted: str) -> str | None:
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in MODULES:
            return ".".join(parts[:n])
    return None


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _from_base(module: str, node: ast.ImportFrom) -> str:
    """The dotted module a from-import in ``module`` imports from."""
    if not node.level:
        return node.module or ""
    package = module if _is_package(module) else module.rpartition(".")[0]
    parts = package.split(".")
    return ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module
                                                             else []))


def _function_level(tree: ast.AST) -> set[int]:
    """ids of the import nodes that stand inside a function."""
    inner: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inner |= {id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return inner


@functools.cache
def _trees() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def _is_reexport(module: str, node: ast.Import | ast.ImportFrom, inner: set[int]) -> bool:
    """A package's ``__init__`` importing from its own submodules, outside any function."""
    return (isinstance(node, ast.ImportFrom) and _is_package(module) and id(node) not in inner
            and _from_base(module, node).startswith(module + "."))


@functools.cache
def reexports(package: str) -> dict[str, str]:
    """Name → the submodule a package's ``__init__`` re-exports it from."""
    tree = _trees()[package]
    inner = _function_level(tree)
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _is_reexport(package, node, inner):
            base = _from_base(package, node)
            for a in node.names:
                source = f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else \
                    _longest_module(base)
                if source:
                    out[a.asname or a.name] = source
    return out


def _whole(module: str) -> set[str]:
    """A module, and for a package everything its ``__init__`` re-exports (imported whole)."""
    found = {module}
    if _is_package(module):
        for source in reexports(module).values():
            found |= _whole(source) if source != module else set()
    return found


def _name_in(package: str, name: str) -> set[str]:
    """What importing ``name`` from ``package`` depends on."""
    if f"{package}.{name}" in MODULES:
        return _whole(f"{package}.{name}")
    if name == "*":
        return _whole(package)
    if _is_package(package) and name in reexports(package):
        source = reexports(package)[name]
        return _name_in(source, name) if _is_package(source) and source != package else {source}
    return {package}


def targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """Package modules an import statement in ``module`` names (see the module docstring)."""
    if isinstance(node, ast.Import):
        return {t for a in node.names if (m := _longest_module(a.name)) for t in _whole(m)}
    base = _from_base(module, node)
    owner = base if base in MODULES else _longest_module(base)
    if owner is None:
        return set()
    if owner != base:  # from a.b.c import x where a.b.c is no module of ours
        return {owner}
    return {t for a in node.names for t in _name_in(base, a.name)}


def _outside(node: ast.Import | ast.ImportFrom) -> frozenset[str]:
    if isinstance(node, ast.ImportFrom):
        return frozenset() if node.level or (node.module or "").startswith("experiments") \
            else frozenset({(node.module or "").split(".")[0]})
    return frozenset(a.name.split(".")[0] for a in node.names
                     if not a.name.startswith("experiments"))


@functools.cache
def modules() -> dict[str, Module]:
    """Every module of the package, parsed once per test session."""
    out = {}
    for name, path in MODULES.items():
        tree = _trees()[name]
        inner = _function_level(tree)
        imports = tuple(
            Import(node, frozenset() if _is_reexport(name, node, inner)
                   else frozenset(targets(name, node) - {name}), top, _outside(node))
            for node, top in _import_nodes(tree))
        lines = len(path.read_text(encoding="utf-8").splitlines())
        out[name] = Module(name, path, tree, lines, imports)
    return out


@functools.cache
def graph() -> dict[str, frozenset[str]]:
    """Module → the package modules it imports, counting every import statement."""
    return {m.name: frozenset(t for i in m.imports for t in i.targets)
            for m in modules().values()}


def find_cycle(edges: dict[str, frozenset[str]] | dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as a path of module names, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def _cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected parts with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Functions and methods; a function nested in another counts in its parent only."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node
        else:
            yield from _functions(node)


def _exits(tree: ast.AST) -> list[int]:
    """Lines that end the process: ``sys.exit``, ``os._exit``, ``ctx.exit``, ``exit()``,
    ``raise SystemExit``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr in ("exit", "_exit")) or (
                    isinstance(func, ast.Name) and func.id in ("exit", "quit")):
                lines.append(node.lineno)
        elif isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "SystemExit":
                lines.append(node.lineno)
    return lines


def _big_modules() -> list[str]:
    return [f"{m.name} ({m.lines})" for m in modules().values() if m.lines > MAX_MODULE_LINES]


def _big_functions() -> list[str]:
    return [f"{m.name}.{f.name} ({(f.end_lineno or f.lineno) - f.lineno + 1})"
            for m in modules().values() for f in _functions(m.tree)
            if (f.end_lineno or f.lineno) - f.lineno + 1 > MAX_FUNCTION_LINES]


def _cli_exits() -> list[str]:
    return [f"{m.name}:{line}" for m in modules().values()
            if m.name.startswith("experiments.cli") for line in _exits(m.tree)]


def _shared_file_names() -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        if path.name not in ("__init__.py", "__main__.py"):
            seen.setdefault(path.name, []).append(name)
    return {base: names for base, names in sorted(seen.items()) if len(names) > 1}


# -- the walker itself ---------------------------------------------------------------------------
def test_the_graph_sees_known_edges() -> None:
    edges = graph()
    assert "experiments.cli.main" in edges["experiments.executor"]  # auto_cli hands over
    assert "experiments.worker.specs" in edges["experiments.worker.build"]  # a from-import
    assert "experiments.backends" in edges["experiments.session"]  # `from . import backends`
    # a package's re-exports are edges of whoever imports the package, not of the package
    assert "experiments.verbs.launch" not in edges["experiments.verbs"]
    assert "experiments.executor" not in edges["experiments"]


def test_every_import_counts_and_names_resolve_to_their_module() -> None:
    typing_only = [i for i in modules()["experiments.experiment"].imports if not i.top_level]
    assert "experiments.model.sets" in {t for i in typing_only for t in i.targets}
    assert "experiments.model.sets" in graph()["experiments.experiment"]  # TYPE_CHECKING counts
    tree = ast.parse("from experiments import paths, __version__\nfrom .. import _proc\n"
                     "from experiments import Executor\nimport experiments.verbs\n")
    first, second, third, fourth = tree.body
    assert isinstance(first, ast.ImportFrom) and isinstance(second, ast.ImportFrom)
    assert isinstance(third, ast.ImportFrom) and isinstance(fourth, ast.Import)
    assert targets("experiments.worker.build", first) == {"experiments.paths", "experiments"}
    assert targets("experiments.worker.build", second) == {"experiments._proc"}
    assert targets("experiments.cli.main", third) == {"experiments.executor"}  # a re-export
    assert "experiments.verbs.wait" in targets("experiments.cli.main", fourth)
    typed = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x\n"
                      "def f():\n    import y\n")
    assert [(n.names[0].name, top) for n, top in _import_nodes(typed)] == [
        ("TYPE_CHECKING", True), ("x", False), ("y", False)]


def test_the_cycle_finders_find_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    ring = {"a": frozenset({"b"}), "b": frozenset({"a"}), "c": frozenset({"a"})}
    assert _cycles(ring) == [["a", "b"]]


def test_the_size_and_exit_walkers_count_what_they_should() -> None:
    tree = ast.parse("import sys\ndef f():\n    def g():\n        pass\n    sys.exit(1)\n"
                     "class C:\n    def m(self):\n        raise SystemExit(2)\n"
                     "def h(ctx):\n    ctx.exit(0)\n    os._exit(3)\n")
    assert [f.name for f in _functions(tree)] == ["f", "m", "h"]
    assert _exits(tree) == [5, 8, 10, 11]


# -- the done-when of issue 22 -------------------------------------------------------------------
def test_no_import_cycle_in_the_package() -> None:
    cycles = _cycles(graph())
    assert cycles == [], "import cycles:\n" + "\n".join(" ".join(c) for c in cycles)


def test_the_cli_never_imports_the_executor() -> None:
    users = sorted(name for name, edges in graph().items()
                   if name.startswith("experiments.cli") and "experiments.executor" in edges)
    assert users == []


def test_no_module_over_500_lines() -> None:
    assert _big_modules() == []


def test_no_function_over_50_lines() -> None:
    assert _big_functions() == []


def test_the_top_level_holds_at_most_15_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_no_two_modules_share_a_file_name() -> None:
    assert _shared_file_names() == {}


def test_exit_codes_are_decided_in_one_place() -> None:
    exits = _cli_exits()
    assert len(exits) == 1, exits


def test_the_worker_imports_only_the_standard_library_and_worker_safe_modules() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    worker = {n for n in MODULES if n.startswith("experiments.worker")}
    problems = []
    for name in sorted(worker | WORKER_SAFE):
        for imp in modules()[name].imports:
            outside = imp.outside - stdlib
            if outside and (imp.top_level or name in worker):
                problems.append(f"{name} imports {sorted(outside)}")
            if name in worker and (wrong := imp.targets - worker - WORKER_SAFE):
                problems.append(f"{name} imports {sorted(wrong)}")
            if name in WORKER_SAFE and imp.top_level and (wrong := imp.targets - WORKER_SAFE):
                problems.append(f"{name} imports {sorted(wrong)} when it is imported")
    assert problems == []


# -- today's rules ------------------------------------------------------------------------------
def test_only_proc_imports_subprocess() -> None:
    users = sorted(m.name for m in modules().values()
                   if any("subprocess" in i.outside for i in m.imports))
    assert users == ["experiments._proc"]


def test_backends_base_imports_no_concrete_backend() -> None:
    assert not {m for m in graph()["experiments.backends.base"]
                if m.startswith(("experiments.backends.slurm",
                                 "experiments.backends.local"))}


def _tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    return [REPO / p for p in out.stdout.decode().split("\0") if p]


@pytest.mark.parametrize("needle", ["/work/", "/root/"])
def test_no_absolute_machine_path_in_the_repo(needle: str) -> None:
    files = _tracked_files()
    assert files, "git ls-files found nothing"
    hits = []
    for path in files:
        if path.suffix in (".png", ".jpg") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if needle in text and path != Path(__file__):
            hits.append(str(path.relative_to(REPO)))
    assert hits == []
