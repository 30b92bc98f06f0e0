"""Training never calls constrain() (IndRNN's |u| bound). Caught by: ..._cell_constraints."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_train.py", "-k", "constraints"]


def apply() -> None:
    from rnnlab.run import SequenceModel

    swap(SequenceModel, "constrain", lambda original: lambda self: None)


def pytest_configure(config: Any) -> None:
    apply()
