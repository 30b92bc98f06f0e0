"""``rnnlab run``: validate a config, train it with a progress display, and sum it up."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from rnnlab._names import DIVERGED, FAILED

if TYPE_CHECKING:
    from rnnlab.plugins import Registry
    from rnnlab.run import Progress, RunResult, Tracker


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
    registry: Registry | Callable[[], Registry],
    path: str,
    overrides: Sequence[str],
    track: bool,
    tracking_uri: str | None,
) -> int:
    """``rnnlab run``: validate, train with a progress display, summarise. Returns the exit code.

    ``registry`` may be a function that loads the plugins: the MLflow helper process
    (rnnlab.run.BackgroundTracker) is started before it, so that it imports MLflow and opens the
    store while the plugins, the config, the data and the model load (issue 22)."""
    from rnnlab.run import BackgroundTracker, NullTracker

    tracker: Tracker = BackgroundTracker(tracking_uri) if track else NullTracker(False)
    try:
        result = _train_file(registry, path, overrides, tracker)
    finally:
        if isinstance(tracker, BackgroundTracker):
            tracker.close()  # a run it started and finish() did not end: ended as killed
    return _report(result, tracker)


def _train_file(
    registry: Registry | Callable[[], Registry],
    path: str,
    overrides: Sequence[str],
    tracker: Tracker,
) -> RunResult:
    from rnnlab.run import load_run_config, train

    plugins = registry() if callable(registry) else registry
    resolved = load_run_config(path, plugins, list(overrides))
    display = ProgressDisplay(resolved.config.train.steps, resolved.name)
    try:
        return train(resolved, tracker, progress=display)
    finally:
        display.close()


def _report(result: RunResult, tracker: Tracker) -> int:
    from rnnlab.run import summary_line

    click.echo(summary_line(result))
    if result.outcome == DIVERGED:
        click.echo(
            f"The run diverged (NaN/Inf) at step {result.diverged_at}; recorded as 'diverged'."
        )
    if result.outcome == FAILED:
        click.echo(f"Error: the run failed: {result.message}", err=True)
    error = getattr(tracker, "error", None)
    if error:  # training went on; its result is above, the record is not in MLflow
        click.echo(f"Error: the run was not recorded in MLflow: {error}", err=True)
        return 1
    click.echo(f"MLflow: {result.where}")
    return 1 if result.outcome == FAILED else 0
