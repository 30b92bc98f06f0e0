"""``rnnlab plugins``: every installed plugin, what it registered, its version and its errors."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from rnnlab._names import KINDS, PLURALS

if TYPE_CHECKING:
    from rnnlab.plugins import Plugins


def plugin_rows(plugins: Plugins) -> list[dict[str, Any]]:
    """One row per distribution (or per unpackaged plugin): version, names by kind, errors."""
    plugins.registry()  # registering finds the remaining errors
    rows: dict[str, dict[str, Any]] = {}
    for info in plugins.infos.values():
        key = info.distribution or f"{info.name} (no distribution)"
        row = rows.setdefault(
            key,
            {
                "distribution": info.distribution or info.name,
                "version": info.version,
                "plugins": [],
                **{PLURALS[kind]: [] for kind in KINDS},
                "errors": [],
            },
        )
        row["plugins"].append(info.name)
        for kind, names in info.registered.items():
            row[PLURALS[kind]].extend(sorted(names))
        row["errors"].extend(f"{info.name}: {e}" for e in info.errors)
    return sorted(rows.values(), key=lambda r: str(r["distribution"]))


def show_plugins(plugins: Plugins, as_json: bool) -> None:
    """The rows as a listing (or JSON) on stdout."""
    rows = plugin_rows(plugins)
    unmatched = plugins.unmatched_message()
    if as_json:
        if unmatched:
            click.echo(f"Warning: {unmatched}", err=True)
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(
            f"No plugins loaded: {unmatched}"
            if unmatched
            else "No plugins loaded (RNNLAB_LOAD_PLUGINS may be empty; is rnnlab installed?)"
        )
    elif unmatched:
        click.echo(f"Warning: {unmatched}", err=True)
    for row in rows:
        status = click.style(" BROKEN", fg="red") if row["errors"] else ""
        click.echo(f"{row['distribution']} {row['version'] or ''}{status}")
        click.echo(f"  entry points: {', '.join(row['plugins'])}")
        for kind in (PLURALS[kind] for kind in KINDS):
            if row[kind]:
                click.echo(f"  {kind}: {', '.join(row[kind])}")
        for error in row["errors"]:
            click.echo(f"  error: {error}")
    sys.stdout.flush()
