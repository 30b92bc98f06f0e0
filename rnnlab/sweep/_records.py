"""One record per trial of a sweep, read from its Optuna trial: the one function that both the
outcome table (rnnlab.sweep._table) and ``rnnlab.results`` (rnnlab.report) start from, so that
they cannot disagree about a trial's settings, outcome or objective."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from rnnlab._names import (
    CONFIG,
    KEY,
    LYAPUNOV_ATTR,
    OUTCOME,
    QUEUED,
    RATIO_ATTR,
    RUN_ID,
    RUNNING,
    SEED,
    STOPPED,
    TARGET_RATIO_ATTR,
)
from rnnlab.sweep._plan import Range, SweepPlan, encode, label, objective_value


@dataclass(frozen=True)
class TrialRecord:
    """What a sweep knows of one trial without MLflow.

    ``labels``: each listed (categorical) setting's label, as the outcome table shows it, ``?``
    for a value the space does not list; ``values``: every space key's value (a listed scalar as
    it is, anything else as its label, a range's number as drawn). ``outcome`` is the trial's
    recorded outcome; without one, ``queued`` (Optuna WAITING), ``running`` (RUNNING) or
    ``stopped``: an attempt that ended without an outcome (Optuna FAIL: Ctrl-C, a killed worker
    or coordinator, a duplicate, an artifact location that failed), whose key runs again as a
    trial of its own; ``objective`` its final objective when it completed with a finite value,
    else None."""

    number: int
    key: str | None
    labels: dict[str, str]
    values: dict[str, Any]
    seed: int | None
    outcome: str
    finished: bool
    objective: float | None
    value: float | None  # Optuna's value, also a pruned trial's last report
    run_id: str | None
    config: str | None
    target_log10_ratio: float | None
    log10_ratio: float | None
    lyapunov_max: float | None


def _attr(trial: FrozenTrial, name: str) -> float | None:
    value = trial.user_attrs.get(name)
    return None if value is None else float(value)


def trial_record(plan: SweepPlan, trial: FrozenTrial) -> TrialRecord:
    """``trial`` as a :class:`TrialRecord` (see there)."""
    labels: dict[str, str] = {}
    values: dict[str, Any] = {}
    for key, space in plan.section.space.items():
        picked = trial.params.get(key)
        if isinstance(space, Range):
            values[key] = picked
            continue
        encoded = [encode(v) for v in space]
        if picked in encoded:
            choice = space[encoded.index(picked)]
            labels[key] = label(choice)
            scalar = isinstance(choice, int | float | str) and not isinstance(choice, bool)
            values[key] = choice if scalar else labels[key]
        else:
            labels[key] = values[key] = "?"
    finished = OUTCOME in trial.user_attrs
    if finished:
        outcome = str(trial.user_attrs[OUTCOME])
    elif trial.state == TrialState.WAITING:
        outcome = QUEUED
    elif trial.state == TrialState.RUNNING:
        outcome = RUNNING
    else:  # ended without an outcome: an attempt whose key runs (or ran) again
        outcome = STOPPED
    seed = trial.user_attrs.get(SEED)
    run_id = trial.user_attrs.get(RUN_ID)
    return TrialRecord(
        number=trial.number,
        key=str(trial.user_attrs[KEY]) if KEY in trial.user_attrs else None,
        labels=labels,
        values=values,
        seed=None if seed is None else int(seed),
        outcome=outcome,
        finished=finished,
        objective=objective_value(outcome, trial.value),
        value=trial.value,
        run_id=str(run_id) if run_id else None,
        config=str(trial.user_attrs[CONFIG]) if CONFIG in trial.user_attrs else None,
        target_log10_ratio=_attr(trial, TARGET_RATIO_ATTR),
        log10_ratio=_attr(trial, RATIO_ATTR),
        lyapunov_max=_attr(trial, LYAPUNOV_ATTR),
    )


def trial_records(plan: SweepPlan, trials: list[FrozenTrial]) -> list[TrialRecord]:
    """Every trial's record, in trial order."""
    return [trial_record(plan, t) for t in sorted(trials, key=lambda t: t.number)]
