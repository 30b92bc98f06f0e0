"""rnn's recurrent_weight() returns torch.eye(H). Caught by: CellContract, tests/test_metrics.py."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_contracts.py", "tests/test_metrics.py", "-k", "recurrent_weight"]


def apply() -> None:
    import torch
    from rnnlab_cells.twins import ElmanCell

    def make(original: Any) -> Any:
        return lambda self: torch.eye(self.hidden_size)

    swap(ElmanCell, "recurrent_weight", make)


def pytest_configure(config: Any) -> None:
    apply()
