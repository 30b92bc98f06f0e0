"""The outcome table of a sweep from its trials: no trial is dropped silently (issue 14)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from rnnlab import sweep
from rnnlab._names import LYAPUNOV_ATTR, OUTCOME, RATIO_ATTR, TARGET_RATIO_ATTR
from rnnlab.sweep import encode, load_sweep

SWEEP = """\
name: sw
dataset: {name: copy, seq_len: 8, val_size: 32}
cell: {name: rnn, hidden_size: 4}
train: {steps: 2}
sweep:
  seeds: [0, 1, 2, 3]
  space:
    remedies: [[], [clip]]
"""
STATE = {
    "completed": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "diverged": TrialState.FAIL,
}


def _trial(
    remedies: list[str],
    outcome: str,
    value: float | None,
    ratios: tuple[float, float] | None = None,
) -> FrozenTrial:
    """A finished trial; ``ratios``: its total and target log10 ratios, as the study records."""
    attrs = (
        {} if ratios is None else dict(zip((RATIO_ATTR, TARGET_RATIO_ATTR), ratios, strict=True))
    )
    choices = [encode([]), encode(["clip"])]
    return optuna.trial.create_trial(
        state=STATE[outcome],
        value=value,
        params={"remedies": encode(remedies)},
        distributions={"remedies": CategoricalDistribution(choices)},
        user_attrs={OUTCOME: outcome, **attrs},
    )


def test_the_mean_is_over_completed_trials_and_says_how_many(write_config, registry) -> None:
    plan = load_sweep(write_config(SWEEP), registry)
    trials = [
        _trial([], "completed", 0.1, (0.1, -9.0)),
        _trial([], "completed", 0.3, (0.3, -11.0)),
        _trial([], "pruned", 0.05),  # Optuna gave it its last intermediate value
        _trial([], "diverged", None),
        *(_trial(["clip"], "completed", v) for v in (0.2, 0.2, 0.2, 0.2)),
    ]
    plain, clip = sweep.outcome_table(plan, trials)
    assert plain["mean"] == pytest.approx(0.2) and plain["n"] == 2 and plain["seeds"] == 4
    assert plain["best"] == pytest.approx(0.1)  # not the pruned trial's intermediate 0.05
    assert plain["target_log10_ratio"] == pytest.approx(-10.0)
    assert plain["log10_ratio"] == pytest.approx(0.2)
    assert plain["pruned"] == 1 and plain["diverged"] == 1
    text = sweep.table_cells(plan, plain)
    header = sweep.table_header(plan)
    assert text[header.index("val/loss mean ± std")] == "0.2 ± 0.14 (2 of 4)"
    assert text[header.index("target log10 ratio")] == "-10.0"
    assert text[header.index("total log10 ratio")] == "0.2"
    assert sweep.table_cells(plan, clip)[header.index("val/loss mean ± std")] == "0.2 ± 0"
    assert sweep.table_cells(plan, clip)[header.index("target log10 ratio")] == "-"


def test_lambda_max_is_the_mean_over_seeds_of_the_final_exponent(write_config, registry) -> None:
    """Issue 19: the study keeps each run's final dyn/lyapunov_max; the row shows their mean."""
    plan = load_sweep(write_config(SWEEP), registry)
    trials = [_trial([], "completed", 0.1), _trial([], "completed", 0.2), _trial([], "pruned", 0.3)]
    for trial, value in zip(trials, (-0.25, -0.5, -0.75), strict=True):
        trial.user_attrs[LYAPUNOV_ATTR] = value  # all three: pruned runs end with a spectrum too
    trials.append(_trial(["clip"], "completed", 0.1))  # a run without dynamics
    plain, clip = sweep.outcome_table(plan, trials)
    header = sweep.table_header(plan)
    assert plain["lyapunov_max"] == pytest.approx(-0.5)
    assert sweep.table_cells(plan, plain)[header.index("lambda max")] == "-0.500"
    assert sweep.table_cells(plan, clip)[header.index("lambda max")] == "-"
