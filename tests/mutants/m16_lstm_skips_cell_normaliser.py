"""The LSTM skips its cell-state normaliser (norm of c_t). Caught by: test_ln_lstm_step_...."""

from __future__ import annotations

import inspect
from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_normalization.py", "-k", "ln_lstm"]


def apply() -> None:
    from rnnlab_cells.twins import LSTMCell

    def make(original: Any) -> Any:
        def step(self: Any, u_t: Any, state: Any, t: int) -> Any:
            norm, self.norm_cell = self.norm_cell, None
            try:
                return original(self, u_t, state, t)
            finally:
                self.norm_cell = norm

        return step

    if "norm_cell" not in inspect.getsource(LSTMCell):
        raise AttributeError("LSTMCell no longer has norm_cell: update this defect")
    swap(LSTMCell, "step", make)


def pytest_configure(config: Any) -> None:
    apply()
