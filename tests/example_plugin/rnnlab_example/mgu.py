"""The minimal gated unit (Zhou et al. 2016): a GRU with one gate."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

import rnnlab


class MinimalGatedUnit(rnnlab.Cell):
    """f_t = sigmoid(W_f x_t + U_f h_{t-1} + b_f); c_t = tanh(W_h x_t + U_h (f_t * h_{t-1}) + b_h);
    h_t = (1 - f_t) * h_{t-1} + f_t * c_t.

    One forget gate does the work of the GRU's update and reset gates. With ``forget_bias`` > 0
    the gate starts mostly open; a negative bias starts it mostly closed, so h_t starts close to
    h_{t-1} and gradients pass through time almost unchanged.
    """

    class Params(rnnlab.Params):
        forget_bias: float = Field(-1.0, description="initial bias b_f of the forget gate")

    params: Params  # self.params, typed (rnnlab validates the options before it builds the cell)

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        self.input = nn.Linear(input_size, 2 * hidden_size)  # [W_f; W_h] and [b_f; b_h]
        self.gate = nn.Linear(hidden_size, hidden_size, bias=False)  # U_f
        self.candidate = nn.Linear(hidden_size, hidden_size, bias=False)  # U_h
        with torch.no_grad():
            self.input.bias[:hidden_size].fill_(self.params.forget_bias)
            self.input.bias[hidden_size:].zero_()

    def project_inputs(self, x: Tensor) -> Tensor:
        return self.input(x)

    def step(self, u_t: Tensor, state: rnnlab.State, t: int) -> tuple[Tensor, rnnlab.State]:
        h = state[0]
        uf, uh = u_t.chunk(2, dim=-1)
        f = torch.sigmoid(uf + self.gate(h))
        c = torch.tanh(uh + self.candidate(f * h))
        h = h + f * (c - h)
        return h, (h,)

    def forward(self, x_t: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        return self.step(self.project_inputs(x_t), state, 0)

    def recurrent_weight(self) -> Tensor:
        return self.candidate.weight
