"""Residual connections through time and across stacked layers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field
from torch import Tensor

import rnnlab
from rnnlab.base import Cell, CellWrapper, State

if TYPE_CHECKING:
    from rnnlab.model import SequenceModel


class ResidualCell(CellWrapper):
    """h_t = h_{t-1} + F(x_t, h_{t-1}): the identity path carries the gradient back unchanged."""

    def step(self, u_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        update, inner_state = self.inner.step(u_t, state, t)
        h = state[0] + update
        return h, (h, *inner_state[1:])


class Residual(rnnlab.Remedy):
    """Through time (each cell wrapped as ``ResidualCell``) and across layers (layer l > 0 adds its
    input to its output, as in Residual IndRNN) when the model has more than one layer."""

    class Params(rnnlab.Params):
        through_time: bool = Field(True, description="h_t = h_{t-1} + F(x_t, h_{t-1})")
        across_layers: bool = Field(True, description="h^l_t = h^{l-1}_t + layer_l(...) for l > 0")

    def apply_cell(self, cell: Cell, layer: int) -> Cell:
        return ResidualCell(cell) if self.params.through_time else cell  # type: ignore[attr-defined]

    def apply_model(self, model: SequenceModel) -> None:
        if self.params.across_layers:  # type: ignore[attr-defined]
            model.residual_layers = True
