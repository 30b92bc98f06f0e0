"""``rnnlab report``: collect a sweep, write its report, print the table and where it is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rnnlab.commands._common import quiet_mlflow
from rnnlab.commands._sweep import print_findings, print_table

if TYPE_CHECKING:
    from rnnlab.plugins import Plugins, Registry


class ReadProgress:
    """How far the report got reading the trials' runs: a bar on a terminal, else a line at
    every quarter (CI logs), on stderr."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.bar: Any = None
        self._next = 0

    def __enter__(self) -> ReadProgress:
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.console.is_terminal:
            if self.bar is None:
                from rich.progress import Progress

                self.bar = Progress(console=self.console, transient=True)
                self.task = self.bar.add_task("reading the trials' runs from MLflow", total=total)
                self.bar.start()
            self.bar.update(self.task, completed=done)
        elif done >= self._next or done == total:
            click.echo(f"reading the trials' runs from MLflow: {done}/{total}", err=True)
            self._next = done + max(1, total // 4)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


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
    with ReadProgress() as progress:
        data = reports.collect(study, plan, tracking_uri, plugins.infos, progress=progress)
    folder = Path(out) if out else Path("reports") / study.study_name.replace("#", "-")
    page = reports.write(data, folder)
    print_table(plan, data.table)
    print_findings(reports.sweep_findings(data))
    if data.running:
        click.echo(f"The sweep is still running: {len(data.trials)} of {data.total} trials done.")
    click.echo(f"Report: {page}")
    if open_page:
        import webbrowser

        webbrowser.open(page.resolve().as_uri())
    return 0
