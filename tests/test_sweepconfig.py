"""Sweep files without running them: messages in words, `exclude`, the flagship's grid."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from rnnlab.errors import ConfigError
from rnnlab.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[1]
BASE = """\
name: sw
dataset: {name: adding, seq_len: 8, val_size: 32}
cell: {name: rnn, hidden_size: 4}
train: {steps: 2}
sweep:
"""


def _error(write_config, registry, sweep: str) -> str:
    path = write_config(BASE + sweep)
    with pytest.raises(ConfigError) as info:
        load_sweep(path, registry)
    message = str(info.value)
    assert message.startswith(str(path))
    return message


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        (
            "  sampler: random\n  trials: 2\n  space:\n    train.lr: {low: 0.1, high: 0.01}\n",
            "line 9, key sweep.space.train.lr: a range needs low below high, got low 0.1 and "
            "high 0.01; swap them",
        ),
        (
            "  sampler: random\n  trials: 2\n  space:\n    train.lr: {low: 0.1}\n",
            "line 9, key sweep.space.train.lr.high: required key",
        ),
        (
            "  sampler: random\n  trials: 2\n  space:\n    train.lr: 0.1\n",
            "line 9, key sweep.space.train.lr: expected a list of values (e.g. [0.1]) or a range",
        ),
        ("  workers: 0\n", "line 6, key sweep.workers: expected auto or a number of parallel"),
    ],
    ids=["low-above-high", "no-high", "scalar", "workers"],
)
def test_messages_say_it_in_words(write_config, registry, sweep: str, expected: str) -> None:
    """Pydantic's union errors named its internals (issue 14, item 8)."""
    message = _error(write_config, registry, sweep)
    assert expected in message, message
    for internal in ("list[any]", "function-after", "constrained-int", "literal["):
        assert internal not in message, message
    assert len(message.splitlines()) == 1  # one problem, one line (not one per union branch)


GRID = """\
  space:
    cell: [{name: rnn}, {name: rnn, nonlinearity: relu}, {name: lstm}]
    remedies: [[], [clip], [relu]]
"""


def test_exclude_removes_the_points_it_names(write_config, registry) -> None:
    rule = "  exclude:\n    - {cell: {name: rnn, nonlinearity: relu}, remedies: [relu]}\n"
    plan = load_sweep(write_config(BASE + GRID + rule), registry)
    labels = [tuple(p.labels().values()) for p in plan.points]
    assert len(labels) == 8 and plan.excluded == 1 and plan.total == 8
    assert ("rnn[nonlinearity=relu]", "relu") not in labels and ("rnn", "relu") in labels
    every = load_sweep(
        write_config(BASE + GRID + "  exclude:\n    - {remedies: [clip]}\n"), registry
    )
    assert len(every.points) == 6 and every.excluded == 3
    assert "exclude" in every.definition
    plain = load_sweep(write_config(BASE + GRID), registry)
    assert "exclude" not in plain.definition  # older sweeps' stored definitions still match


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "    - {remedies: [clp]}\n",
            "key sweep.exclude.0.remedies: 'clp' is not one of the values",
        ),
        ("    - {train.lr: 0.1}\n", "key sweep.exclude.0.train.lr: 'train.lr' is not a key of"),
        ("    - {}\n", "key sweep.exclude.0: an empty rule would exclude every point"),
        (
            "    - {remedies: []}\n    - {remedies: [clip]}\n    - {remedies: [relu]}\n",
            "key sweep.exclude: it excludes every point; nothing would run",
        ),
    ],
    ids=["value", "key", "empty", "everything"],
)
def test_a_bad_exclude_rule_is_refused(write_config, registry, rule: str, expected: str) -> None:
    assert expected in _error(write_config, registry, GRID + "  exclude:\n" + rule)


def test_exclude_is_for_grids(write_config, registry) -> None:
    sweep = "  sampler: random\n  trials: 2\n" + GRID + "  exclude:\n    - {remedies: [clip]}\n"
    assert "exclude removes grid points" in _error(write_config, registry, sweep)


def test_the_flagship_runs_no_model_twice(registry) -> None:
    """Two grid points with the same remedies whose models compute the same function from the
    same seed are one experiment run twice (rnn + relu and rnn[nonlinearity=relu] + relu were)."""
    from rnnlab.run import build

    plan = load_sweep(ROOT / "experiments" / "vanishing.yaml", registry)
    assert plan.total == 92 and len(plan.points) == 46  # README and the file's comments say so
    seen: Counter[tuple[object, ...]] = Counter()
    for point in plan.points:
        if point.run is None:
            continue
        torch.manual_seed(0)
        dataset, remedies, model = build(point.run, torch.device("cpu"))
        x = torch.rand(
            dataset.seq_len, 3, dataset.input_size, generator=torch.Generator().manual_seed(1)
        )
        with torch.no_grad():
            out, _ = model(x)
        run = point.run.as_dict()
        seen[
            (repr(run["remedies"]), repr(run["train"]), dataset.seq_len, out.numpy().tobytes())
        ] += 1
    assert max(seen.values()) == 1
