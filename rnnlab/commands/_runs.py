"""``rnnlab runs [SWEEP]``: a sweep's trials in the terminal (outcome, objective, run id), built
on ``rnnlab.results`` like a notebook would be."""

from __future__ import annotations

import math
from typing import Any

import click

from rnnlab.commands._common import quiet_mlflow


def _only_sweep(storage_url: str) -> str:
    """The one sweep of the storage; a ConfigError listing them when there are several."""
    from rnnlab.errors import ConfigError
    from rnnlab.sweep import sweep_names

    names = sweep_names(storage_url)
    if len(names) != 1:
        raise ConfigError(
            f"{len(names)} sweeps in {storage_url} ({', '.join(names) or 'none'}): name the one "
            "to list, `rnnlab runs NAME` (its file or name; --storage if it used another)"
        )
    return names[0]


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"


def list_runs(sweep: str | None, *, storage: str | None, tracking_uri: str | None) -> int:
    """``rnnlab runs``: one line per trial of the sweep (its newest study)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from rnnlab.report import frame, open_results, read_sweep
    from rnnlab.sweep import default_storage, quiet_optuna

    quiet_optuna()
    storage_url = storage or default_storage()
    target = sweep if sweep is not None else _only_sweep(storage_url)
    study, plan = open_results(target, storage_url)
    quiet_mlflow()
    df = frame(read_sweep(study, plan, tracking_uri))  # what rnnlab.results(target) returns
    settings = list(plan.section.space)
    metric = plan.section.objective.metric
    out = Table(title=f"{study.study_name}: {len(df)} trials, objective {metric}")
    for name in ["trial", *settings, "seed", "outcome", metric, "seconds", "run id"]:
        out.add_column(name, justify="right" if name in ("trial", "seed", "seconds") else "left")
    for record in df.to_dict("records"):
        seed = record["seed"]
        out.add_row(
            str(record["trial"]),
            *(Text(str(record[k])) for k in settings),
            "-" if seed is None or math.isnan(seed) else str(int(seed)),
            str(record["outcome"]),
            _number(record["objective"]),
            _number(record["seconds"]),
            str(record["run_id"] or "-"),
        )
    Console(width=200).print(out)
    counts = df["outcome"].value_counts()
    click.echo(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0
