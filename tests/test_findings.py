"""The report's findings in words (issue 21): each rule of rnnlab.report._findings on a planted
outcome table, and the baselines the built-in tasks declare."""

from __future__ import annotations

import math
from typing import Any

import pytest

from rnnlab.report._findings import Axes, find

AXES = Axes("cell", "remedies", ("dataset.seq_len",))
BASE = 1 / 6


def _row(cell: str, remedies: str, mean: float | None, *, ratio: float | None = None,
         diverged: int = 0, seeds: int = 2, incompatible: int = 0) -> dict[str, Any]:  # fmt: skip
    return {
        "cell": cell, "remedies": remedies, "dataset.seq_len": "60", "mean": mean,
        "seeds": seeds, "target_log10_ratio": ratio, "diverged": diverged,
        "incompatible": incompatible,
    }  # fmt: skip


TABLE = [
    _row("rnn", "none", 0.170, ratio=-12.0),  # 0: fails (within 10% of 1/6)
    _row("rnn", "gating", 0.010, ratio=-0.5),  # 1: rescues: both seeds beat the baseline
    _row("rnn", "clip", 0.090),  # 2: one seed beats, the other does not: no rescue
    _row("lstm", "none", 0.010, ratio=-0.3),  # 3: solves it
    _row("lstm", "batchnorm", 0.160, diverged=1),  # 4: worse than lstm alone, and diverged
    _row("lstm", "relu", None, incompatible=2, seeds=2),  # 5: incompatible: never "worse"
    _row("gru", "none", 0.002, ratio=-6.0),  # 6: beats the baseline with a vanished gradient
    _row("indrnn", "none", 0.165, ratio=-0.2),  # 7: fails with a healthy gradient
]
OBJECTIVES: list[list[float | None]] = [
    [0.17, 0.17], [0.009, 0.011], [0.01, 0.17], [0.01, 0.01], [0.15, None], [None, None],
    [0.002, 0.002], [0.165, 0.165],
]  # fmt: skip


def _found(**kw: Any) -> dict[str, list[tuple[int, str]]]:
    found = find(TABLE, OBJECTIVES, AXES, {("60",): BASE}, metric="val/loss", maximize=False, **kw)
    rules: dict[str, list[tuple[int, str]]] = {}
    for f in found:
        rules.setdefault(f.rule, []).append((f.row, f.text))
    return rules


def test_cells_fail_within_the_tolerance_of_the_baseline() -> None:
    rules = _found()
    assert [row for row, _ in rules["fails"]] == [0, 7]
    assert rules["fails"][0][1] == (
        "At dataset.seq_len=60: rnn fails: val/loss 0.17 without remedies, within 10% of the "
        "baseline 0.1667 or worse."
    )
    # a looser tolerance: rnn's 0.17 still fails; a tolerance of 0 keeps only what is worse
    assert [row for row, _ in _found(tolerance=0.0)["fails"]] == [0]


def test_a_remedy_rescues_only_when_every_seed_beats_the_baseline() -> None:
    rules = _found()
    assert [row for row, _ in rules["rescues"]] == [1]  # clip (row 2) has a seed at 0.17
    assert (
        "gating rescues rnn: all 2 seeds beat the baseline (the weakest: 0.011)"
        in (rules["rescues"][0][1])
    )
    assert [row for row, _ in rules["no_rescue"]] == [7]  # indrnn: no remedy row at all


def test_worse_diverged_and_disagreement() -> None:
    rules = _found()
    assert [row for row, _ in rules["worse"]] == [4]  # not the incompatible row 5
    assert "batchnorm makes lstm worse: val/loss 0.16 against 0.01" in rules["worse"][0][1]
    assert rules["diverged"] == [
        (4, "At dataset.seq_len=60: lstm with batchnorm diverged in 1 of 2 trials.")
    ]
    assert [row for row, _ in rules["disagrees"]] == [6, 7]
    assert (
        "gru with none beats the baseline although its target gradient vanished"
        in (rules["disagrees"][0][1])
    )
    assert (
        "indrnn with none fails although its target gradient did not vanish"
        in (rules["disagrees"][1][1])
    )


def test_a_task_without_a_baseline_is_said_so_once() -> None:
    found = find(TABLE, OBJECTIVES, AXES, {("60",): None}, metric="val/loss", maximize=False)
    assert [f.rule for f in found if f.rule in ("fails", "rescues", "disagrees")] == []
    assert [f.rule for f in found].count("no_baseline") == 1


def test_maximised_objectives_turn_the_comparisons_round() -> None:
    table = [_row("rnn", "none", 0.13), _row("rnn", "gating", 0.9)]
    found = find(table, [[0.13, 0.13], [0.9, 0.95]], AXES, {("60",): 0.125},
                 metric="val/accuracy", maximize=True)  # fmt: skip
    assert [(f.rule, f.row) for f in found] == [("fails", 0), ("rescues", 1)]


@pytest.mark.parametrize(
    ("task", "params", "expected"),
    [
        ("adding", {"seq_len": 20, "val_size": 8, "test_size": 8}, 1 / 6),
        ("copy", {"seq_len": 30, "val_size": 8, "test_size": 8}, 10 * math.log(8) / 50),
    ],
)
def test_the_tasks_declare_their_baselines(
    task: str, params: dict[str, Any], expected: float
) -> None:
    from rnnlab.plugins import make_plugin_manager

    registry = make_plugin_manager().registry()
    cls = registry.get("dataset", task)
    dataset = cls(cls.Params(**params), seed=0)
    assert math.isclose(dataset.baseline("val/loss"), expected, rel_tol=1e-12)
    assert dataset.baseline("val/accuracy") is None
