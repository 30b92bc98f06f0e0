"""IndRNN's recurrent weight u is detached: it never gets a gradient. Caught by: CellContract."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_contracts.py", "-k", "TestIndRNN"]


def apply() -> None:
    from rnnlab_cells.indrnn import IndRNNCell

    def make(original: Any) -> Any:
        return lambda self: original(self).detach()  # |u| clamped, as before, but detached

    swap(IndRNNCell, "bounded_u", make)


def pytest_configure(config: Any) -> None:
    apply()
