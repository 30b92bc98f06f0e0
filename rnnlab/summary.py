"""The outcome table of a sweep: one row per configuration, seeds pooled."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import Any

from optuna.trial import FrozenTrial

from rnnlab.study import CONFIG, OUTCOME, RATIO, encode
from rnnlab.sweepconfig import Range, SweepPlan, label

OUTCOME_NAMES = ("completed", "pruned", "diverged", "failed", "incompatible")


def rows(plan: SweepPlan, trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    """Group finished trials by their categorical settings: objective mean, std, best, outcomes.

    Continuous (range) settings are not grouped on; every other space key is a column.
    """
    columns = axes(plan)
    groups: dict[tuple[str, ...], list[FrozenTrial]] = {}
    for trial in trials:
        if OUTCOME not in trial.user_attrs:
            continue
        labels = []
        for key in columns:
            choices = plan.section.space[key]
            assert isinstance(choices, list)
            encoded = [encode(v) for v in choices]
            picked = trial.params.get(key)
            labels.append(label(choices[encoded.index(picked)]) if picked in encoded else "?")
        groups.setdefault(tuple(labels), []).append(trial)
    table = []
    maximize = plan.section.objective.direction == "maximize"
    order = {k: [label(v) for v in plan.section.space[k]] for k in columns}  # the file's order

    def position(group: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(
            order[k].index(v) if v in order[k] else len(order[k])
            for k, v in zip(columns, group, strict=True)
        )

    for group, members in sorted(groups.items(), key=lambda item: position(item[0])):
        values = [t.value for t in members if t.value is not None and math.isfinite(t.value)]
        outcomes = Counter(str(t.user_attrs[OUTCOME]) for t in members)
        ratios = [float(t.user_attrs[RATIO]) for t in members if RATIO in t.user_attrs]
        row: dict[str, Any] = dict(zip(columns, group, strict=True))
        row.update(
            mean=statistics.fmean(values) if values else None,
            std=statistics.stdev(values) if len(values) > 1 else (0.0 if values else None),
            best=(max(values) if maximize else min(values)) if values else None,
            log10_ratio=statistics.fmean(ratios) if ratios else None,
            seeds=len(members),
            configs=len({t.user_attrs.get(CONFIG) for t in members}),
        )
        row.update({name: outcomes.get(name, 0) for name in OUTCOME_NAMES})
        table.append(row)
    return table


def counts(trials: list[FrozenTrial]) -> Counter[str]:
    return Counter(str(t.user_attrs[OUTCOME]) for t in trials if OUTCOME in t.user_attrs)


def axes(plan: SweepPlan) -> list[str]:
    """The table's setting columns: every space key with listed values."""
    return [k for k, v in plan.section.space.items() if not isinstance(v, Range)]


def header(plan: SweepPlan) -> list[str]:
    metric = plan.section.objective.metric
    return [*axes(plan), f"{metric} mean ± std", "best", "log10 ratio", *OUTCOME_NAMES]


def cells(plan: SweepPlan, row: dict[str, Any]) -> list[str]:
    """A row as text, in the order of :func:`header`. ``log10 ratio`` is the mean over the
    row's trials of log10 ||dL/dh_1|| / ||dL/dh_T|| at their last probe."""
    score = "-" if row["mean"] is None else f"{row['mean']:.4g} ± {row['std']:.2g}"
    best = "-" if row["best"] is None else f"{row['best']:.4g}"
    ratio = "-" if row["log10_ratio"] is None else f"{row['log10_ratio']:.1f}"
    return [
        *(row[a] for a in axes(plan)),
        score,
        best,
        ratio,
        *(str(row[o]) for o in OUTCOME_NAMES),
    ]


def markdown(plan: SweepPlan, table: list[dict[str, Any]]) -> str:
    """The table as markdown (an artifact of the sweep's parent run)."""
    names = header(plan)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines.extend("| " + " | ".join(cells(plan, row)) + " |" for row in table)
    return "\n".join(lines) + "\n"
