"""``config show``: the merged configuration and where each value came from.

Needs no experiment file: ``experiments config show`` and ``python my_experiment.py config
show`` print the same. The layers are the built-in defaults, the site file and the user's file
(see :mod:`experiments.config.settings`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from . import render

if TYPE_CHECKING:
    from ..config.layers import Merged


@click.group(name="config", help="The configuration: built-in defaults < the site's file < "
                                 "yours.", short_help="Show the merged configuration.")
def config_group() -> None:
    """The ``config`` commands."""


@config_group.command(name="show", help="Print the merged configuration and where each value "
                                        "came from (built-in, the site file, your file).")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON (for scripts).")
def show(as_json: bool) -> None:
    """The merged configuration, as a table or JSON (the configuration loads only here)."""
    from ..config import settings as config_mod

    merged = config_mod.merged()
    conf = config_mod.from_layers(merged.layers)
    effective = {"log_directory": str(conf.log_directory), "umask": f"{conf.umask:03o}"}
    if as_json:
        render.as_json(_json(merged, effective))
        return
    _print(merged, effective)


def _json(merged: Merged, effective: dict[str, str]) -> dict[str, Any]:
    """``config show --json``: the layers, the values and where each came from."""
    from ..config import settings as config_mod
    from ..config.layers import nested_sources

    return {"layers": [{"kind": layer.kind, "path": str(layer.path) if layer.path else None,
                        "note": layer.note} for layer in merged.layers],
            "site_env": config_mod.SITE_ENV,
            "values": merged.data, "sources": nested_sources(merged), "effective": effective,
            "not_set": _not_set(merged)}


def _not_set(merged: Merged) -> list[str]:
    """The optional keys no layer sets."""
    from ..config import settings as config_mod

    return sorted(k for k in config_mod.OPTIONAL_KEYS if k not in merged.data)


def _print(merged: Merged, effective: dict[str, str]) -> None:
    """The layers, a table of every value and its source, the umask and what is not set."""
    from rich.table import Table

    from ..config import settings as config_mod
    from ..config.layers import leaves

    escape = render.escape
    out = render.out()
    files = " < ".join(layer.label for layer in merged.layers)
    out.print(escape(f"Configuration: {files} (later ones win)"), soft_wrap=True)
    if not any(layer.kind == "site" for layer in merged.layers):
        out.print(escape(f"No site file ({config_mod.SITE_PATH} does not exist, or "
                         f"{config_mod.SITE_ENV} is set empty)."), soft_wrap=True)
    for layer in merged.layers:
        if layer.note:
            out.print(escape(f"{layer.label}: {layer.note}"), soft_wrap=True)
    table = Table(show_edge=False)
    for col in ("key", "value", "from"):
        table.add_column(col, overflow="fold")
    for path, value, source in leaves(merged):
        shown = json.dumps(value)
        if path == ("log_directory",) and effective["log_directory"] != value:
            shown += f" → {effective['log_directory']}"
        table.add_row(escape(".".join(path)), escape(shown), escape(source))
    out.print(table)
    out.print(escape(f"umask in effect: {effective['umask']}. Not set anywhere: "
                     f"{', '.join(_not_set(merged))}."), soft_wrap=True)
