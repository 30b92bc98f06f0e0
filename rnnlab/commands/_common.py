"""What every command shares: plugin warnings, and MLflow's and Optuna's logs kept quiet."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rnnlab.plugins import Plugins


def warn_plugin_errors(plugins: Plugins) -> None:
    """A warning on stderr for every plugin error (the broken plugin is skipped), and for names
    in RNNLAB_LOAD_PLUGINS that match no installed plugin."""
    unmatched = plugins.unmatched_message()
    if unmatched:
        click.echo(f"Warning: {unmatched}", err=True)
    for line in plugins.errors():
        click.echo(
            f"Warning: {line} (skipped; `rnnlab plugins` shows details, "
            f"--strict-plugins makes this an error)",
            err=True,
        )


def quiet_mlflow() -> None:
    """MLflow, alembic and Optuna log warnings only (call after mlflow's import)."""
    for name in ("mlflow", "alembic", "alembic.runtime.migration", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)
