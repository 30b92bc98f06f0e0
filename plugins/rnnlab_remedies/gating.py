"""A learned update gate around any cell."""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F

import rnnlab


class GatedCell(rnnlab.CellWrapper):
    """h_t = (1 - z_t) * h_{t-1} + z_t * F(x_t, h_{t-1}),
    z_t = sigmoid(W_z x_t + U_z h_{t-1} + b_z).

    Where z is small the old state (and the gradient through it) passes unchanged, as in a GRU.
    The update interpolates the previous state, so the cell is ``additive``.
    """

    additive: ClassVar[bool] = True

    def __init__(self, inner: rnnlab.Cell, bias: float) -> None:
        super().__init__(inner)
        self.gate_x = nn.Linear(inner.input_size, inner.hidden_size)
        self.gate_h = nn.Linear(inner.hidden_size, inner.hidden_size, bias=False)
        with torch.no_grad():
            self.gate_x.bias.fill_(bias)

    def project_inputs(self, x: Tensor) -> Tensor:
        return torch.cat((self.inner.project_inputs(x), self.gate_x(x)), dim=-1)

    def step(self, u_t: Tensor, state: rnnlab.State, t: int) -> tuple[Tensor, rnnlab.State]:
        inner_u, gate_u = u_t.split([u_t.shape[-1] - self.hidden_size, self.hidden_size], dim=-1)
        h_prev = state[0]
        candidate, inner_state = self.inner.step(inner_u, state, t)
        z = torch.sigmoid(gate_u + F.linear(h_prev, self.gate_h.weight))
        h = h_prev + z * (candidate - h_prev)
        return h, (h, *inner_state[1:])


class Gating(rnnlab.Remedy):
    """Wrap each layer's cell in a learned update gate (``GatedCell``)."""

    class Params(rnnlab.Params):
        bias: float = Field(
            0.0, description="initial gate bias; negative values start the gate closed (carry h)"
        )

    params: Params

    def apply_cell(self, cell: rnnlab.Cell, layer: int) -> rnnlab.Cell:
        return GatedCell(cell, float(self.params.bias))
