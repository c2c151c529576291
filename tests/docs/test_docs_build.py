"""The documentation site builds strictly, covers the public API and every verb, and its
marked examples run.

The example convention (documented in docs/contributing-docs.md): an HTML comment
``<!-- example -->``, ``<!-- example run="CMD" -->`` or ``<!-- example file -->`` on the line
before a fenced ``python`` or ``bash`` block.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import experiments
from experiments.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_EXAMPLE = re.compile(
    r'^<!-- example(?: (?P<file>file)| run="(?P<run>[^"]*)")? -->\n'
    r'```(?P<lang>python|bash)(?P<info>[^\n]*)\n(?P<body>.*?)^```[ \t]*$',
    re.M | re.S)
_TITLE = re.compile(r'title="([^"]+)"')


@dataclass(frozen=True)
class Example:
    """One marked block: where to write it and what to run afterwards (None: nothing)."""

    filename: str
    body: str
    command: str | None


def examples_in(text: str) -> list[Example]:
    """The marked example blocks of one markdown page, in page order."""
    found = []
    for m in _EXAMPLE.finditer(text):
        title = _TITLE.search(m["info"])
        lang = m["lang"]
        name = title.group(1) if title else ("example.py" if lang == "python" else "example.sh")
        if m["file"]:
            command = None
        elif m["run"] is not None:
            command = m["run"]
        else:
            command = f"python {name}" if lang == "python" else f"bash -e {name}"
        found.append(Example(name, m["body"], command))
    return found


def _pages_with_examples() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if examples_in(p.read_text(encoding="utf-8")))


def _env(home: Path) -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "EXPERIMENTS_HOME": str(home), "COLUMNS": "200",
            "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _mkdocs_build(site: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--config-file", str(config), "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=_env(site.parent / "home"))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for the module with ``mkdocs build --strict``."""
    out = tmp_path_factory.mktemp("site") / "site"
    result = _mkdocs_build(out, ROOT / "mkdocs.yml")
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-4000:]}"
    assert "WARNING" not in result.stderr, result.stderr[-4000:]
    return out


def test_docs_build_strict(site: Path) -> None:
    for page in ("index.html", "getting-started/index.html", "reference/api/index.html",
                 "guarantees/index.html", "slurm-notes/index.html"):
        assert (site / page).is_file(), page


def test_api_page_lists_exactly_the_public_api(site: Path) -> None:
    text = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: experiments\.(\w+)$", text, re.M))
    assert documented == set(experiments.__all__)
    html = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for name in experiments.__all__:
        assert f'id="experiments.{name}"' in html, f"{name} not rendered"


# Known gaps, each to be documented (or made private) by the module that owns it; an entry
# that gets a docstring must leave this set (the test checks both ways).
KNOWN_UNDOCUMENTED: set[str] = set()


def test_every_public_name_has_a_docstring() -> None:
    """mkdocstrings renders undocumented names silently; this makes them fail instead."""
    missing = set()
    for name in experiments.__all__:
        obj = getattr(experiments, name)
        assert (obj.__doc__ or "").strip(), f"experiments.{name} has no docstring"
        for attr, member in vars(obj).items():
            if callable(member) and not attr.startswith("_") \
                    and not (member.__doc__ or "").strip():
                missing.add(f"{name}.{attr}")
    assert missing == KNOWN_UNDOCUMENTED, f"undocumented public names: {sorted(missing)}"


def test_every_verb_has_a_generated_page_with_its_options(site: Path) -> None:
    assert {"init", "launch", "status", "history", "cat", "cancel"} <= set(cli.commands)
    for name, command in cli.commands.items():
        html = (site / "reference" / "cli" / name / "index.html").read_text(encoding="utf-8")
        assert f"experiments {name}" in html
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert opt in html, f"{name}: option {opt} missing from its page"


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """Strict mode really is on: a copy of the config with a page linking nowhere fails."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\n[gone](missing.md)\n", encoding="utf-8")
    config = tmp_path / "mkdocs.yml"
    config.write_text("site_name: x\nstrict: true\ndocs_dir: docs\n", encoding="utf-8")
    result = _mkdocs_build(tmp_path / "site", config)
    assert result.returncode != 0 and "missing.md" in result.stderr


def test_example_parser() -> None:
    text = ('<!-- example file -->\n```python title="a.py"\nx = 1\n```\n'
            '<!-- example run="python a.py go" -->\n```bash\necho\n```\n'
            '```python\nnot an example\n```\n<!-- example -->\n```bash title="s.sh"\nls\n```\n')
    assert examples_in(text) == [Example("a.py", "x = 1\n", None),
                                 Example("example.sh", "echo\n", "python a.py go"),
                                 Example("s.sh", "ls\n", "bash -e s.sh")]


def test_the_docs_have_examples() -> None:
    names = {p.name for p in _pages_with_examples()}
    assert {"getting-started.md", "day-to-day.md", "artifacts.md"} <= names


@pytest.mark.parametrize("page", _pages_with_examples(),
                         ids=lambda p: str(p.relative_to(DOCS)))
def test_examples_run(page: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = _env(tmp_path / "home")
    for example in examples_in(page.read_text(encoding="utf-8")):
        (work / example.filename).write_text(example.body, encoding="utf-8")
        if example.command is None:
            continue
        result = subprocess.run(["bash", "-e", "-c", example.command], cwd=work, env=env,
                                capture_output=True, text=True, timeout=120,
                                stdin=subprocess.DEVNULL)
        assert result.returncode == 0, (
            f"{page.name}: example {example.filename} ({example.command}) failed:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
