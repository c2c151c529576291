"""The shape of the package: no import cycle, one place for subprocesses, no machine paths.

Imports are read from the source (not executed). An edge A → B is an import statement in A that
names module B, wherever it stands (also inside a function), except under ``if TYPE_CHECKING:``
(annotations only). ``from . import x`` names the submodule ``x`` when one exists.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "experiments"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Import nodes of a module, skipping ``if TYPE_CHECKING:`` bodies."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            visit(child)

    visit(tree)
    return found


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """Package modules an import statement names."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in MODULES}
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    if node.level:
        base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join(base_parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    out = {base} if base in MODULES else set()
    out |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES}
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {t for node in _imports(tree) for t in _targets(name, node)} - {name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as a path of module names, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_known_edges() -> None:
    graph = _graph()
    assert "experiments.cli.main" in graph["experiments.executor"]  # auto_cli hands over
    assert "experiments.backends.base" in graph["experiments.tracking.status"]
    assert "experiments.verbs.launch" in graph["experiments.verbs"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_only_proc_imports_subprocess() -> None:
    users = []
    for name, path in MODULES.items():
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""])
            if "subprocess" in names:
                users.append(name)
    assert users == ["experiments._proc"]


def test_backends_base_imports_no_concrete_backend() -> None:
    assert not {m for m in _graph()["experiments.backends.base"]
                if m.startswith(("experiments.backends.slurm",
                                 "experiments.backends.local.backend"))}


def test_cli_does_not_import_the_executor_module() -> None:
    graph = _graph()
    assert "experiments.executor" not in graph["experiments.cli.main"]
    assert "experiments.executor" not in graph["experiments.cli.render"]


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
