"""IndRNN (Li et al. 2018): independently recurrent neurons with a bounded recurrent weight."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn
from torch.nn import functional as F

import rnnlab
from rnnlab.base import Cell, Normalizer, NormalizerFactory, State


class IndRNNCell(Cell):
    """h_t = f(W x_t + b + u * h_{t-1}) with an element-wise recurrent weight u, |u| <= bound.

    The paper keeps |u| <= 2^(1/T) on the adding problem (so a gradient can at most double over T
    steps), initialises u uniformly in [0, bound] and clips u after every update. Here u is clipped
    in place after every optimizer step (``constrain``), so it keeps learning at the bound, and the
    forward pass also uses the clamped value, so the bound holds however the cell is used.
    """

    class Params(rnnlab.Params):
        nonlinearity: Literal["relu", "tanh"] = Field("relu", description="f in the update")
        recurrent_max: float = Field(
            1.0, gt=0, description="bound on |u|; the paper uses 2**(1/T) for sequences of length T"
        )
        recurrent_min: float = Field(0.0, ge=0, description="lower end of u's uniform init")

        @model_validator(mode="after")
        def _init_range(self) -> IndRNNCell.Params:
            if self.recurrent_min > self.recurrent_max:
                raise ValueError(
                    f"recurrent_min ({self.recurrent_min}) must not exceed recurrent_max "
                    f"({self.recurrent_max}): u is initialised uniformly between them"
                )
            return self

    capabilities: ClassVar[frozenset[str]] = frozenset({"normalize"})

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        p = self.params
        self.input = nn.Linear(input_size, hidden_size)
        self.u = nn.Parameter(torch.empty(hidden_size))
        self.norm_input: Normalizer | None = None
        self.norm_hidden: Normalizer | None = None
        with torch.no_grad():
            self.u.uniform_(p.recurrent_min, p.recurrent_max)  # type: ignore[attr-defined]
            self.input.bias.zero_()

    def bounded_u(self) -> Tensor:
        bound = float(self.params.recurrent_max)  # type: ignore[attr-defined]
        return self.u.clamp(-bound, bound)

    def constrain(self) -> None:
        bound = float(self.params.recurrent_max)  # type: ignore[attr-defined]
        with torch.no_grad():
            self.u.clamp_(-bound, bound)

    def set_normalizers(self, make: NormalizerFactory) -> None:
        self.norm_input = make(self.hidden_size, "input")
        self.norm_hidden = make(self.hidden_size, "hidden")

    def recurrent_weight(self) -> Tensor:
        return torch.diag(self.bounded_u())

    def project_inputs(self, x: Tensor) -> Tensor:
        if self.norm_input is None:
            return self.input(x)
        wx = F.linear(x, self.input.weight)
        return self.norm_input(wx, None if x.dim() == 3 else 0) + self.input.bias

    def step(self, u_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        recurrent = self.bounded_u() * state[0]
        if self.norm_hidden is not None:
            recurrent = self.norm_hidden(recurrent, t)
        a = u_t + recurrent
        h = torch.relu(a) if self.params.nonlinearity == "relu" else torch.tanh(a)  # type: ignore[attr-defined]
        return h, (h,)

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        return self.step(self.project_inputs(x_t), state, 0)
