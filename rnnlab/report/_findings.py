"""The answer of a sweep in words: per task setting, which cells fail, which remedies rescue
them, which make things worse, what diverged, and where the target gradient ratio and the
outcome disagree. Computed from the outcome table and the trials' objectives by the rules below
(docs/report.md states them), never typed by hand; each finding names the table row it reads.

A cell *fails* a task setting when its row without remedies has a mean objective within
:data:`TOLERANCE` (relative) of the task's trivial baseline, or worse (the baseline is the
Dataset's :meth:`rnnlab.Dataset.baseline` of the objective: the adding problem's 1/6, copy
memory's 10 ln 8 / (T + 20), chars' unigram entropy, forecast's persistence). A remedy *rescues*
a failing cell when every trial of its row completed and each one's objective beats the baseline
by more than the tolerance. A remedy *makes it worse* when its row's mean objective is worse than
the row without remedies by more than the tolerance, or none of its trials completed while some
without it did. A row *diverged* when any of its trials did. The target gradient ratio and the
outcome *disagree* when a row beats the baseline although its target curve's log10 ratio is below
:data:`VANISHED` (the gradient at h_1 over 1000 times smaller than at h_T), or fails although the
ratio is above :data:`HEALTHY` (the gradient did not vanish).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from rnnlab._names import DIVERGED, INCOMPATIBLE, NO_REMEDY, QUEUED, RUNNING
from rnnlab.sweep import label, objective_value, table_axes

if TYPE_CHECKING:
    from rnnlab.report._data import ReportData
    from rnnlab.sweep import SweepPlan

TOLERANCE = 0.1
"""How close to the baseline (relative to it) a mean objective counts as not having learned."""
VANISHED = -3.0
"""A target log10 ratio below this is a vanished gradient (h_1's over 1000 times below h_T's)."""
HEALTHY = -1.0
"""A target log10 ratio above this is a gradient that did not vanish (within a factor 10)."""


@dataclass(frozen=True)
class Finding:
    """One sentence and the outcome-table row (index into the table) it comes from."""

    rule: str  # fails, rescues, no_rescue, worse, diverged, disagrees, no_baseline
    text: str
    row: int


@dataclass(frozen=True)
class Axes:
    """Which table columns are the cell, the remedies and the task setting."""

    cell: str
    remedies: str
    settings: tuple[str, ...]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def find(
    table: list[dict[str, Any]],
    objectives: list[list[float | None]],
    axes: Axes,
    baselines: dict[tuple[str, ...], float | None],
    *,
    metric: str,
    maximize: bool,
    tolerance: float = TOLERANCE,
) -> list[Finding]:
    """The findings of ``table`` (outcome-table rows) by the module's rules. ``objectives[i]``
    holds every trial of row i (None: it did not complete); ``baselines`` the baseline of each
    task setting (the values of ``axes.settings``), None where the task declares none."""
    found: list[Finding] = []

    def setting_of(row: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(row[a]) for a in axes.settings)

    def where(setting: tuple[str, ...]) -> str:
        text = ", ".join(f"{a}={v}" for a, v in zip(axes.settings, setting, strict=True))
        return f"At {text}" if text else "On this task"

    def beats(value: float, base: float) -> bool:
        margin = tolerance * abs(base)
        return value > base + margin if maximize else value < base - margin

    def worse(value: float, than: float) -> bool:
        margin = tolerance * abs(than)
        return value < than - margin if maximize else value > than + margin

    by_cell: dict[tuple[tuple[str, ...], str], list[int]] = {}
    for i, row in enumerate(table):
        by_cell.setdefault((setting_of(row), str(row[axes.cell])), []).append(i)
    told: set[tuple[str, ...]] = set()
    for (setting, cell), rows in by_cell.items():
        base = baselines.get(setting)
        bare = next((i for i in rows if table[i][axes.remedies] == NO_REMEDY), None)
        if base is None:
            if setting not in told:
                told.add(setting)
                found.append(
                    Finding("no_baseline", f"{where(setting)}: the task declares no baseline "
                            f"for {metric}, so no cell is judged against one.", rows[0])
                )  # fmt: skip
        elif bare is not None and table[bare]["mean"] is not None:
            mean = float(table[bare]["mean"])
            if not beats(mean, base):
                found.append(
                    Finding("fails", f"{where(setting)}: {cell} fails: {metric} {_fmt(mean)} "
                            f"without remedies, within {tolerance:.0%} of the baseline "
                            f"{_fmt(base)} or worse.", bare)
                )  # fmt: skip
                rescued = False
                for i in rows:
                    if i == bare:
                        continue
                    values = objectives[i]
                    if values and all(v is not None and beats(v, base) for v in values):
                        rescued = True
                        shown = [v for v in values if v is not None]
                        edge = max(shown) if not maximize else min(shown)
                        found.append(
                            Finding("rescues", f"{where(setting)}: {table[i][axes.remedies]} "
                                    f"rescues {cell}: all {len(values)} seeds beat the "
                                    f"baseline (the weakest: {_fmt(edge)}).", i)
                        )  # fmt: skip
                if not rescued:
                    found.append(
                        Finding("no_rescue", f"{where(setting)}: no remedy rescues {cell} (none "
                                "beats the baseline on every seed).", bare)
                    )  # fmt: skip
        if bare is not None:
            bare_mean = table[bare]["mean"]
            for i in rows:
                if i == bare or table[i].get(INCOMPATIBLE, 0) == table[i]["seeds"]:
                    continue
                mean = table[i]["mean"]
                remedy = table[i][axes.remedies]
                if bare_mean is not None and mean is None:
                    found.append(
                        Finding("worse", f"{where(setting)}: {remedy} makes {cell} worse: none "
                                "of its trials completed, while without remedies some did.", i)
                    )  # fmt: skip
                elif bare_mean is not None and worse(float(mean), float(bare_mean)):
                    found.append(
                        Finding("worse", f"{where(setting)}: {remedy} makes {cell} worse: "
                                f"{metric} {_fmt(mean)} against {_fmt(bare_mean)} without "
                                "remedies.", i)
                    )  # fmt: skip
        for i in rows:
            row = table[i]
            if row.get(DIVERGED, 0):
                found.append(
                    Finding("diverged", f"{where(setting)}: {cell} with {row[axes.remedies]} "
                            f"diverged in {row[DIVERGED]} of {row['seeds']} trials.", i)
                )  # fmt: skip
            ratio = row.get("target_log10_ratio")
            if base is None or ratio is None or row["mean"] is None:
                continue
            solved = beats(float(row["mean"]), base)
            if solved and ratio < VANISHED:
                found.append(
                    Finding("disagrees", f"{where(setting)}: {cell} with {row[axes.remedies]} "
                            f"beats the baseline although its target gradient vanished (log10 "
                            f"ratio {ratio:.1f}).", i)
                )  # fmt: skip
            elif not solved and ratio > HEALTHY:
                found.append(
                    Finding("disagrees", f"{where(setting)}: {cell} with {row[axes.remedies]} "
                            f"fails although its target gradient did not vanish (log10 ratio "
                            f"{ratio:.1f}).", i)
                )  # fmt: skip
    return found


class Trial(Protocol):
    """What the findings read of a trial: a :class:`rnnlab.sweep.TrialRecord` (the sweep's end)
    or a :class:`rnnlab.report.TrialData` (the report) has it."""

    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def outcome(self) -> str: ...
    @property
    def value(self) -> float | None: ...


def sweep_axes(plan: SweepPlan, table: list[dict[str, Any]]) -> tuple[Axes, list[dict[str, Any]]]:
    """The cell, remedies and task-setting columns of the outcome table, and the table with a
    column for the cell or the remedies added where the space does not vary them (the base
    config's, then)."""
    columns = table_axes(plan)
    cell = next((a for a in ("cell", "cell.name") if a in columns), "cell")
    remedies = "remedies"
    base = plan.base.config
    fixed = {
        cell: label(base.cell.name) if hasattr(base.cell, "name") else "?",
        remedies: "+".join(r.name for r in base.remedies) or NO_REMEDY,
    }
    table = [{**{k: v for k, v in fixed.items() if k not in columns}, **row} for row in table]
    settings = tuple(a for a in columns if a not in (cell, remedies))
    return Axes(cell, remedies, settings), table


def plan_findings(
    plan: SweepPlan, table: list[dict[str, Any]], trials: Iterable[Trial]
) -> list[Finding]:
    """The findings of a sweep: its outcome table, its finished trials' objectives, and each
    task setting's baseline from a Dataset built from the first grid point of that setting.
    The one entry point of both ``rnnlab report`` and the end of ``rnnlab sweep``, so the two
    cannot disagree; it reads nothing from Optuna or MLflow."""
    axes, table = sweep_axes(plan, table)
    columns = table_axes(plan)
    metric = plan.section.objective.metric
    by_row: dict[tuple[str, ...], list[float | None]] = {}
    for t in trials:
        if t.outcome in (RUNNING, QUEUED):  # not in the table yet
            continue
        key = tuple(t.labels[a] for a in columns)
        by_row.setdefault(key, []).append(objective_value(t.outcome, t.value))
    objectives = [by_row.get(tuple(row[a] for a in columns), []) for row in table]
    baselines: dict[tuple[str, ...], float | None] = {}
    for point in plan.points:
        labels = point.labels()
        setting = tuple(labels.get(a, "?") for a in axes.settings)
        if point.run is None or setting in baselines:
            continue
        baselines[setting] = point.run.instantiate_dataset().baseline(metric)
    if not plan.points:  # a sampled sweep: the base config's task
        baselines[()] = plan.base.instantiate_dataset().baseline(metric)
    maximize = plan.section.objective.direction == "maximize"
    return find(table, objectives, axes, baselines, metric=metric, maximize=maximize)


def sweep_findings(data: ReportData) -> list[Finding]:
    """:func:`plan_findings` of a read sweep (the report's page and terminal)."""
    return plan_findings(data.plan, data.table, data.trials)
