"""The suites' learning check is not vacuous: without optimizer steps it fails; with them the
built-in cells learn its task by a wide margin (so it is no flaky threshold)."""

from __future__ import annotations

from typing import Any

import pytest

import rnnlab.run._train
from rnnlab.testing import LEARNABLE, LEARNED, Learnable, learning_run, registry_with


def registry() -> Any:
    return registry_with("dataset", Learnable, name=LEARNABLE)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_the_learning_check_learns_by_a_wide_margin(cell: str) -> None:
    first, last = learning_run(registry(), {"name": cell, "hidden_size": 8})
    assert last < LEARNED / 2 * first  # measured worst over 24 configurations x 8 seeds: 0.20


def test_the_learning_check_fails_without_optimizer_steps(monkeypatch) -> None:
    original = rnnlab.run._train.make_optimizer

    def make_optimizer(model: Any, run: Any) -> Any:
        optimizer = original(model, run)
        optimizer.step = lambda *args, **kwargs: None
        return optimizer

    monkeypatch.setattr(rnnlab.run._train, "make_optimizer", make_optimizer)
    with pytest.raises(AssertionError, match="did not learn"):
        learning_run(registry(), {"name": "rnn", "hidden_size": 8})
