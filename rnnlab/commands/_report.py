"""``rnnlab report``: collect a sweep, write its report, print the table and where it is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rnnlab.commands._common import quiet_mlflow
from rnnlab.commands._sweep import print_table

if TYPE_CHECKING:
    from rnnlab.plugins import Plugins, Registry


def report_sweep(
    registry: Registry,
    plugins: Plugins,
    target: str,
    *,
    out: str | None,
    storage: str | None,
    tracking_uri: str | None,
    open_page: bool,
) -> int:
    """``rnnlab report``: collect a sweep, write the report, print the table and where it is."""
    from rnnlab import report as reports
    from rnnlab.sweep import default_storage, open_sweep

    study, plan = open_sweep(target, storage or default_storage(), registry)
    quiet_mlflow()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per trial
    data = reports.collect(study, plan, tracking_uri, plugins.infos)
    folder = Path(out) if out else Path("reports") / study.study_name.replace("#", "-")
    page = reports.write(data, folder)
    print_table(plan, data.table)
    if data.running:
        click.echo(f"The sweep is still running: {len(data.trials)} of {data.total} trials done.")
    click.echo(f"Report: {page}")
    if open_page:
        import webbrowser

        webbrowser.open(page.resolve().as_uri())
    return 0
