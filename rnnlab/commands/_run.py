"""``rnnlab run``: validate a config, train it with a progress display, and sum it up."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from rnnlab._names import DIVERGED, FAILED
from rnnlab.commands._common import quiet_mlflow

if TYPE_CHECKING:
    from rnnlab.plugins import Registry
    from rnnlab.run import Progress


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
    from rnnlab.run import MlflowTracker, NullTracker, Tracker, load_run_config, summary_line, train

    resolved = load_run_config(path, registry, list(overrides))
    tracker: Tracker
    if track:
        tracker = MlflowTracker(tracking_uri=tracking_uri)
        quiet_mlflow()  # after mlflow's import, which sets its own levels
    else:
        tracker = NullTracker(keep_artifacts=False)
    display = ProgressDisplay(resolved.config.train.steps, resolved.name)
    try:
        result = train(resolved, tracker, progress=display)
    finally:
        display.close()
    click.echo(summary_line(result))
    if result.outcome == DIVERGED:
        click.echo(
            f"The run diverged (NaN/Inf) at step {result.diverged_at}; recorded as 'diverged'."
        )
    if result.outcome == FAILED:
        click.echo(f"Error: the run failed: {result.message}", err=True)
    click.echo(f"MLflow: {result.where}")
    return 1 if result.outcome == FAILED else 0
