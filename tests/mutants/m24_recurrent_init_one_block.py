"""A gated cell's init_recurrent writes its stacked W_hh as one block. Caught by: test_orthogonal.

As ``orthogonal_(cell.recurrent_weight())`` would on lstm and gru: no gate's H x H block is then
orthogonal (CellContract.test_recurrent_init_writes_the_recurrent_weight catches it too)."""

from __future__ import annotations

from typing import Any

import torch

from tests.mutants import swap

SELECTION = ["tests/test_orthogonal.py", "-k", "gate_block"]


def apply() -> None:
    from rnnlab_cells.twins import _TwinCell

    def make(original: Any) -> Any:
        def init_recurrent(self: Any, init: Any) -> None:
            with torch.no_grad():
                fresh = torch.empty_like(self.weight_hh)
                init(fresh)  # the whole stack at once
                self.weight_hh.copy_(fresh)

        return init_recurrent

    swap(_TwinCell, "init_recurrent", make)


def pytest_configure(config: Any) -> None:
    apply()
