"""What the commands print: run progress, summaries and the plugin listing."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rnnlab.plugins import Plugins, Registry
    from rnnlab.train import Progress


def warn_plugin_errors(plugins: Plugins) -> None:
    for line in plugins.errors():
        click.echo(
            f"Warning: {line} (skipped; `rnnlab plugins` shows details, "
            f"--strict-plugins makes this an error)",
            err=True,
        )


def _quiet_mlflow() -> None:
    for name in ("mlflow", "alembic", "alembic.runtime.migration", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)


class ProgressDisplay:
    """A rich progress bar on a terminal; a plain line every 10% elsewhere (CI logs)."""

    def __init__(self, total: int, label: str) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.total = total
        self.label = label
        self.live = self.console.is_terminal
        self._next_line = 0
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.task = self.bar.add_task(label, total=total, info="")
            self.bar.start()

    def __call__(self, p: Progress) -> None:
        acc = "-" if p.accuracy is None else f"{p.accuracy:.3f}"
        ratio = "-" if p.log10_ratio is None else f"{p.log10_ratio:.1f}"
        info = (
            f"step {p.step}/{p.steps} loss {p.loss:.4g} acc {acc} log10 ratio {ratio} "
            f"{p.steps_per_s:.1f} steps/s"
        )
        if self.live:
            self.bar.update(self.task, completed=p.step, info=info)
        elif p.step >= self._next_line or p.step == p.steps:
            click.echo(f"{self.label}: {info}", err=True)
            self._next_line = p.step + max(1, self.total // 10)

    def close(self) -> None:
        if self.live:
            self.bar.stop()


def run_file(
    registry: Registry,
    path: str,
    overrides: Sequence[str],
    track: bool,
    tracking_uri: str | None,
) -> int:
    """``rnnlab run``: validate, train with a progress display, summarise. Returns the exit code."""
    from rnnlab.config import load_run_config
    from rnnlab.tracking import MlflowTracker, NullTracker, Tracker
    from rnnlab.train import summary_line, train

    resolved = load_run_config(path, registry, list(overrides))
    tracker: Tracker
    if track:
        tracker = MlflowTracker(tracking_uri=tracking_uri)
        _quiet_mlflow()  # after mlflow's import, which sets its own levels
    else:
        tracker = NullTracker(keep_artifacts=False)
    display = ProgressDisplay(resolved.config.train.steps, resolved.name)
    try:
        result = train(resolved, tracker, progress=display)
    finally:
        display.close()
    click.echo(summary_line(result))
    if result.outcome == "diverged":
        click.echo(
            f"The run diverged (NaN/Inf) at step {result.diverged_at}; recorded as 'diverged'."
        )
    if result.outcome == "failed":
        click.echo(f"Error: the run failed: {result.message}", err=True)
    click.echo(f"MLflow: {result.where}")
    return 1 if result.outcome == "failed" else 0


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
                "cells": [],
                "datasets": [],
                "remedies": [],
                "errors": [],
            },
        )
        row["plugins"].append(info.name)
        for kind, names in info.registered.items():
            row[f"{kind}s" if kind != "remedy" else "remedies"].extend(sorted(names))
        row["errors"].extend(f"{info.name}: {e}" for e in info.errors)
    return sorted(rows.values(), key=lambda r: str(r["distribution"]))


def show_plugins(plugins: Plugins, as_json: bool) -> None:
    rows = plugin_rows(plugins)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No plugins loaded (RNNLAB_LOAD_PLUGINS may be empty; is rnnlab installed?)")
    for row in rows:
        status = click.style(" BROKEN", fg="red") if row["errors"] else ""
        click.echo(f"{row['distribution']} {row['version'] or ''}{status}")
        click.echo(f"  entry points: {', '.join(row['plugins'])}")
        for kind in ("cells", "datasets", "remedies"):
            if row[kind]:
                click.echo(f"  {kind}: {', '.join(row[kind])}")
        for error in row["errors"]:
            click.echo(f"  error: {error}")
    sys.stdout.flush()


def sweep_file(
    registry: Registry,
    path: str,
    overrides: Sequence[str],
    *,
    storage: str | None,
    workers: int | None,
    gpus: str | None,
    dry_run: bool,
    fresh: bool,
    tracking_uri: str | None,
    heartbeat: int | None = None,
) -> int:
    """``rnnlab sweep``: validate, plan slots, run (or print the plan). Returns the exit code."""
    from rnnlab import sweepview
    from rnnlab.sweepconfig import default_storage, load_sweep
    from rnnlab.workers import plan_slots

    plan = load_sweep(path, registry, list(overrides))
    chosen = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
    count = workers if workers is not None else plan.section.workers
    slots = plan_slots(count, chosen, plan.total)
    storage = storage or default_storage()
    if dry_run:
        sweepview.print_plan(plan, slots, storage)
        return 0
    import optuna

    from rnnlab.sweep import Sweep, SweepInterrupted

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    display = sweepview.ProgressView()
    sweep = Sweep(plan, storage, slots, tracking_uri, fresh, display, heartbeat)
    _quiet_mlflow()
    try:
        result = sweep.run()
    except SweepInterrupted as exc:
        click.echo(str(exc), err=True)
        return 130
    finally:
        display.close()
    sweepview.print_table(plan, result.table)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
    click.echo(f"sweep {result.study_name!r} done: {counts}")
    click.echo(
        f"MLflow: parent run {result.parent_run_id} in experiment {plan.name!r}; "
        f"Optuna: study {result.study_name!r} in {storage}"
    )
    return 0


def ui(
    sweep_name: str | None, *, port: int, host: str, storage: str | None, tracking_uri: str | None
) -> int:
    """``rnnlab ui``: find the stores a sweep used, then serve the UIs until Ctrl-C."""
    from rnnlab import ui as servers
    from rnnlab.study import TRACKING_URI, load_latest
    from rnnlab.study import sweep_name as name_of
    from rnnlab.sweepconfig import default_storage

    storage_url = storage or default_storage()
    experiment = name_of(sweep_name) if sweep_name is not None else None
    if experiment is not None:
        study = load_latest(storage_url, experiment)
        tracking_uri = tracking_uri or study.user_attrs.get(TRACKING_URI)
    if tracking_uri is None:
        import mlflow

        tracking_uri = mlflow.get_tracking_uri()
    known = storage is not None or sweep_name is not None or Path(storage_url).exists()
    return servers.serve(
        str(tracking_uri),
        storage_url if known else None,
        port=port,
        host=host,
        experiment=experiment,
    )


def report(
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
    from rnnlab import sweepview
    from rnnlab.reportdata import collect
    from rnnlab.study import open_sweep
    from rnnlab.sweepconfig import default_storage

    study, plan = open_sweep(target, storage or default_storage(), registry)
    _quiet_mlflow()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per trial
    data = collect(study, plan, tracking_uri, plugins.infos)
    folder = Path(out) if out else Path("reports") / study.study_name.replace("#", "-")
    page = reports.write(data, folder)
    sweepview.print_table(plan, data.table)
    if data.running:
        click.echo(f"The sweep is still running: {len(data.trials)} of {data.total} trials done.")
    click.echo(f"Report: {page}")
    if open_page:
        import webbrowser

        webbrowser.open(page.resolve().as_uri())
    return 0
