"""What every command shares: plugin warnings, MLflow's and Optuna's logs kept quiet, and the
MLflow UI's deep links a command ends with."""

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


def echo_links(
    tracking_uri: str, experiment_id: str, run_id: str | None, *, ui: str | None = None
) -> None:
    """Where to click: the experiment's runs page and the sweep's parent run (or the run) in
    MLflow's UI: ``ui`` (a running ``rnnlab ui``), the tracking server itself, or the UI that
    ``rnnlab ui`` / ``mlflow ui`` would serve on the store (on their default port)."""
    from rnnlab._names import DEFAULT_UI, ui_links

    served = tracking_uri.startswith(("http://", "https://"))
    base = ui or (tracking_uri if served else DEFAULT_UI)
    runs, run = ui_links(base, experiment_id, run_id)
    if ui is None and not served:
        click.echo(f"  `rnnlab ui` (or `mlflow ui --backend-store-uri {tracking_uri}`), then open:")
    click.echo(f"  the runs: {runs}")
    if run is not None:
        click.echo(f"  the parent run: {run}")
