"""MkDocs hook: one generated page per CLI verb, from the click commands themselves.

Each verb of ``experiments.cli.main:cli`` gets ``reference/cli/<verb>.md`` holding a
mkdocs-click directive, and a nav entry under "Reference → CLI". Because the pages and the
nav are made from ``cli.commands`` at build time, a new, renamed or removed verb or option
shows up in the docs without anyone editing them: the CLI reference cannot drift.

mkdocs-click loads a command as ``module:attribute``; the verbs are not module attributes,
so this hook publishes them as attributes of a small in-memory module.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from mkdocs.structure.files import File, Files

_MODULE = "_experiments_cli_verbs"


def _verbs() -> dict[str, Any]:
    from experiments.cli.main import cli

    return dict(sorted(cli.commands.items()))


def _page(name: str, command: Any) -> str:
    """The page of one verb: mkdocs-click renders its title, help, usage and options."""
    return ("::: mkdocs-click\n"
            f"    :module: {_MODULE}\n"
            f"    :command: {name}\n"
            f"    :prog_name: experiments {name}\n"
            "    :style: table\n\n"
            "Global options (`--file`, `--local`, `--workers`, `--artifact-path`, "
            "`--code-path`) may also come before the verb: see [the CLI](../cli.md).\n")


def on_config(config: Any) -> Any:
    """Publish the verbs for mkdocs-click and list one page per verb in the nav."""
    verbs = _verbs()
    module = types.ModuleType(_MODULE)
    for name, command in verbs.items():
        setattr(module, name, command)
    sys.modules[_MODULE] = module
    entries = [{name: f"reference/cli/{name}.md"} for name in verbs]
    for section in config["nav"] or []:
        if isinstance(section, dict) and "Reference" in section:
            section["Reference"] = [e for e in section["Reference"]
                                    if not (isinstance(e, dict) and "CLI verbs" in e)]
            section["Reference"].append({"CLI verbs": entries})
    return config


def on_files(files: Files, config: Any) -> Files:
    """Add the generated verb pages."""
    for name, command in _verbs().items():
        files.append(File.generated(config, f"reference/cli/{name}.md",
                                    content=_page(name, command)))
    return files
