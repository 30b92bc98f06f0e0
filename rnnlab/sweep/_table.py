"""The outcome table of a sweep: one row per configuration, seeds pooled.

The objective's mean ± std is over the row's completed trials, each at its final value; a row
whose other trials (pruned, diverged, failed, incompatible) were left out of it says how many it
covers, ``(n of m)``, so no trial is dropped silently. Optuna gives a pruned trial the value of
its last report, an intermediate score: it never enters the mean.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from optuna.trial import FrozenTrial

from rnnlab._names import OUTCOME, OUTCOMES
from rnnlab.sweep._plan import Range, SweepPlan, label
from rnnlab.sweep._records import TrialRecord, trial_records


def outcome_table(plan: SweepPlan, trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    """Group finished trials by their categorical settings: objective mean, std, best (over
    the completed trials, ``n`` of them), mean log10 ratios of the target and total curves, the
    mean final largest Lyapunov exponent, and the count of each outcome.

    Continuous (range) settings are not grouped on; every other space key is a column. Built on
    :func:`rnnlab.sweep.trial_records`, as ``rnnlab.results`` is (one reading of a trial).
    """
    return group_records(plan, trial_records(plan, trials))


def group_records(plan: SweepPlan, records: list[TrialRecord]) -> list[dict[str, Any]]:
    """:func:`outcome_table` of the finished ones of ``records``."""
    columns = table_axes(plan)
    groups: dict[tuple[str, ...], list[TrialRecord]] = {}
    for record in records:
        if record.finished:
            groups.setdefault(tuple(record.labels[k] for k in columns), []).append(record)
    table = []
    maximize = plan.section.objective.direction == "maximize"
    order = {k: [label(v) for v in plan.section.space[k]] for k in columns}  # the file's order

    def position(group: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(
            order[k].index(v) if v in order[k] else len(order[k])
            for k, v in zip(columns, group, strict=True)
        )

    for group, members in sorted(groups.items(), key=lambda item: position(item[0])):
        values = [r.objective for r in members if r.objective is not None]
        outcomes = Counter(r.outcome for r in members)
        row: dict[str, Any] = dict(zip(columns, group, strict=True))
        row.update(
            mean=statistics.fmean(values) if values else None,
            std=statistics.stdev(values) if len(values) > 1 else (0.0 if values else None),
            best=(max(values) if maximize else min(values)) if values else None,
            n=len(values),
            target_log10_ratio=_mean([r.target_log10_ratio for r in members]),
            log10_ratio=_mean([r.log10_ratio for r in members]),
            lyapunov_max=_mean([r.lyapunov_max for r in members]),
            seeds=len(members),
            configs=len({r.config for r in members}),
        )
        row.update({name: outcomes.get(name, 0) for name in OUTCOMES})
        table.append(row)
    return table


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def outcome_counts(trials: list[FrozenTrial]) -> Counter[str]:
    return Counter(str(t.user_attrs[OUTCOME]) for t in trials if OUTCOME in t.user_attrs)


def table_axes(plan: SweepPlan) -> list[str]:
    """The table's setting columns: every space key with listed values."""
    return [k for k, v in plan.section.space.items() if not isinstance(v, Range)]


def table_header(plan: SweepPlan) -> list[str]:
    metric = plan.section.objective.metric
    ratios = ["target log10 ratio", "total log10 ratio", "lambda max"]
    return [*table_axes(plan), f"{metric} mean ± std", "best", *ratios, *OUTCOMES]


def table_cells(plan: SweepPlan, row: dict[str, Any]) -> list[str]:
    """A row as text, in the order of :func:`table_header`.

    The objective's mean ± std is followed by ``(n of m)`` when only n of the row's m trials
    completed. ``target log10 ratio`` is the mean over the row's trials of log10 ||dL_t/dh_1|| /
    ||dL_t/dh_T|| at their last probe, L_t the loss of the task's target steps alone (the probes
    of rnnlab.run); ``total log10 ratio`` the same of the whole loss L. They are equal on
    last-step tasks. ``lambda max`` is the mean over the row's trials of their final
    ``dyn/lyapunov_max`` (the top layer's largest Lyapunov exponent after the last update,
    rnnlab.run._dynamics): below 0 the dynamics contract, and the gradient vanishes with them."""
    score = "-" if row["mean"] is None else f"{row['mean']:.4g} ± {row['std']:.2g}"
    if row["mean"] is not None and row["n"] < row["seeds"]:
        score += f" ({row['n']} of {row['seeds']})"
    best = "-" if row["best"] is None else f"{row['best']:.4g}"

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    return [
        *(row[a] for a in table_axes(plan)),
        score,
        best,
        ratio(row["target_log10_ratio"]),
        ratio(row["log10_ratio"]),
        "-" if row["lyapunov_max"] is None else f"{row['lyapunov_max']:.3f}",
        *(str(row[o]) for o in OUTCOMES),
    ]


def table_markdown(plan: SweepPlan, table: list[dict[str, Any]]) -> str:
    """The table as markdown (an artifact of the sweep's parent run)."""
    names = table_header(plan)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines.extend("| " + " | ".join(table_cells(plan, row)) + " |" for row in table)
    return "\n".join(lines) + "\n"
