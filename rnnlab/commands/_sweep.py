"""``rnnlab sweep``: validate the sweep file, plan the slots and run it (or print the plan with
--dry-run), with live progress and the outcome table at the end."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from rnnlab.commands._common import echo_links, quiet_mlflow

if TYPE_CHECKING:
    from rnnlab.plugins import Registry
    from rnnlab.report import Finding
    from rnnlab.sweep import Slot, Sweep, SweepPlan, SweepState


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _threads(plan: SweepPlan, slots: list[Slot]) -> str:
    """The torch threads a trial gets: its ``train.threads`` when set (train() applies it after
    the worker's share of the cores), else the slot's share."""
    runs = [p.run for p in plan.points if p.run is not None] or [plan.base]
    counts = sorted({r.config.train.threads or slots[0].threads for r in runs})
    given = " (train.threads)" if any(r.config.train.threads for r in runs) else ""
    return f"{' or '.join(map(str, counts))} torch thread(s){given}"


def print_plan(plan: SweepPlan, slots: list[Slot], storage: str) -> None:
    """Every combination, how many trials, the slots: ``--dry-run``."""
    from rnnlab.sweep import describe_space

    section = plan.section
    click.echo(
        f"sweep {plan.name!r}: sampler {section.sampler}, seeds {section.seeds}, "
        f"objective {section.objective.direction} {section.objective.metric}"
    )
    for line in describe_space(section):
        click.echo(f"  space {line}")
    if plan.grid:
        excluded = f" ({plan.excluded} excluded by sweep.exclude)" if plan.excluded else ""
        click.echo(
            f"{len(plan.points)} combinations{excluded} x {len(section.seeds)} seeds "
            f"= {plan.total} trials:"
        )
        for i, point in enumerate(plan.points, 1):
            text = " ".join(f"{k}={v}" for k, v in point.labels().items()) or "base config"
            mark = f"  [incompatible: {point.problem}]" if point.run is None else ""
            click.echo(f"  {i:3d}. {text}{mark}")
        skipped = sum(p.run is None for p in plan.points) * len(section.seeds)
        if skipped:
            click.echo(
                f"{skipped} trials are incompatible: recorded as 'incompatible', not trained"
            )
    else:
        click.echo(
            f"{section.trials} sampled configurations x {len(section.seeds)} seeds "
            f"= {plan.total} trials"
        )
    click.echo(f"slots: {', '.join(s.label() for s in slots)} ({_threads(plan, slots)} each)")
    click.echo(f"optuna storage: {storage}")
    click.echo("dry run: nothing was started")


class ProgressView:
    """A live table on a terminal; one line per finished trial elsewhere (CI logs)."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.live: Any = None
        self._printed = -1
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(console=self.console, refresh_per_second=2, transient=False)
            self.live.start()

    def __call__(self, state: SweepState) -> None:
        if self.live is not None:
            self.live.update(self._table(state))
        elif state.done != self._printed:
            self._printed = state.done
            click.echo(self._line(state), err=True)

    def _line(self, state: SweepState) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(state.counts.items())) or "none yet"
        best = "-" if state.best is None else f"{state.best[0]:.4g} ({state.best[1]})"
        elapsed = time.monotonic() - state.started
        return (
            f"{state.name}: {state.done}/{state.total} trials ({counts}); best {best}; "
            f"elapsed {_duration(elapsed)}, remaining ~{_duration(state.eta())}"
        )

    def _table(self, state: SweepState) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(expand=False)
        table.add_column("slot")
        table.add_column("trial")
        table.add_column("step", justify="right")
        for slot in state.slots:
            active = state.active.get(slot.index)
            if active is None:
                table.add_row(slot.label(), "idle", "")
            else:
                table.add_row(slot.label(), Text(active.label), f"{active.step}/{active.steps}")
        return Group(Text(self._line(state)), table)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def print_table(plan: SweepPlan, table: list[dict[str, Any]]) -> None:
    """The final outcome table: objective mean ± std over seeds, gradient ratio, outcomes."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from rnnlab.sweep import table_axes, table_cells, table_header

    settings = len(table_axes(plan))
    out = Table(
        title=f"{plan.name}: {plan.section.objective.direction} {plan.section.objective.metric}"
    )
    for i, name in enumerate(table_header(plan)):
        out.add_column(name, justify="left" if i < settings else "right")
    for row in table:
        # Text: a label such as "rnn[nonlinearity=relu]" is not rich markup
        out.add_row(*(Text(cell) for cell in table_cells(plan, row)))
    Console(width=180).print(out)


def print_findings(found: Sequence[Finding]) -> None:
    """The findings in words after the table (``rnnlab sweep`` and ``rnnlab report``)."""
    if found:
        click.echo("Findings (row N: the table's Nth row, from the top):")
        for finding in found:
            click.echo(f"- {finding.text} (row {finding.row + 1})")


def sweep_end_findings(plan: SweepPlan, sweep: Sweep, table: list[dict[str, Any]]) -> list[Finding]:
    """The report's findings (:func:`rnnlab.report.plan_findings`) of the outcome table just
    printed and the trials' objectives, from the coordinator's study (the Optuna storage it has
    open; no MLflow read)."""
    from rnnlab.report import plan_findings
    from rnnlab.sweep import trial_records

    return plan_findings(plan, table, trial_records(plan, sweep.study.finished()))


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
    from rnnlab.sweep import SweepOptions, default_storage, load_sweep, plan_slots

    plan = load_sweep(path, registry, list(overrides))
    chosen = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
    count = workers if workers is not None else plan.section.workers
    slots = plan_slots(count, chosen, plan.total)
    storage = storage or default_storage()
    if dry_run:
        print_plan(plan, slots, storage)
        return 0
    from rnnlab.sweep import Sweep, SweepInterrupted, quiet_optuna

    quiet_optuna()
    display = ProgressView()
    options = SweepOptions(storage, tracking_uri, fresh, heartbeat)
    sweep = Sweep(plan, slots, options, display)
    quiet_mlflow()
    try:
        result = sweep.run()
    except SweepInterrupted as exc:
        click.echo(str(exc), err=True)
        return 130
    finally:
        display.close()
    print_table(plan, result.table)
    print_findings(sweep_end_findings(plan, sweep, result.table))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
    click.echo(f"sweep {result.study_name!r} done: {counts}")
    click.echo(
        f"MLflow: parent run {result.parent_run_id} in experiment {plan.name!r}; "
        f"Optuna: study {result.study_name!r} in {storage}"
    )
    if sweep.parent.experiment_id is not None:
        echo_links(sweep.parent.tracking_uri, sweep.parent.experiment_id, result.parent_run_id)
    return 0
