"""The classic tutorial SimpleRNN: one Linear over [x_t, h_{t-1}] for the hidden state (i2h),
another for the output (i2o) followed by LogSoftmax.

The tutorial applies no nonlinearity to the hidden state; ``nonlinearity`` makes it an option.
Inside an rnnlab model only i2h is used (the model has its own head); ``tutorial_forward``
reproduces the tutorial's ``forward(input, hidden) -> (output, hidden)`` given ``output_size``.

Example (the tutorial's own, with rnnlab):
    >>> rnn = SimpleRNN(10, 20, SimpleRNN.Params(output_size=2))
    >>> output, hidden = rnn.tutorial_forward(torch.randn(1, 10), rnn.init_hidden())
    >>> output.shape, hidden.shape
    (torch.Size([1, 2]), torch.Size([1, 20]))
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F

import rnnlab


class SimpleRNN(rnnlab.Cell):
    """h_t = f(i2h([x_t, h_{t-1}])), f the identity by default, as in the tutorial."""

    class Params(rnnlab.Params):
        nonlinearity: Literal["none", "tanh", "relu"] = Field(
            "none", description="f applied to the new hidden state (the tutorial has none)"
        )
        output_size: int | None = Field(
            None, gt=0, description="adds the tutorial's i2o + LogSoftmax output (tutorial_forward)"
        )

    params: Params

    capabilities: ClassVar[frozenset[str]] = frozenset({"identity_init", "recurrent_init"})

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        self.nonlinearity: str = self.params.nonlinearity
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        output_size = self.params.output_size
        self.i2o = nn.Linear(input_size + hidden_size, output_size) if output_size else None
        self.softmax = nn.LogSoftmax(dim=1)

    def _act(self, a: Tensor) -> Tensor:
        if self.nonlinearity == "tanh":
            return torch.tanh(a)
        if self.nonlinearity == "relu":
            return torch.relu(a)
        return a

    def recurrent_weight(self) -> Tensor:
        """W_h, a view of i2h's weight (its last H columns): in-place writes reach i2h."""
        return self.i2h.weight[:, self.input_size :]

    def init_recurrent(self, init: rnnlab.RecurrentInitializer) -> None:
        """``init`` on W_h, written into i2h's weight (capability ``recurrent_init``)."""
        with torch.no_grad():
            fresh = torch.empty_like(self.recurrent_weight())
            init(fresh)
            self.recurrent_weight().copy_(fresh)

    def input_weight(self) -> Tensor:
        return self.i2h.weight[:, : self.input_size]  # a view: in-place changes reach i2h

    def project_inputs(self, x: Tensor) -> Tensor:
        # i2h([x, h]) = W_x x + b + W_h h: the x half is hoisted out of the time loop
        return F.linear(x, self.i2h.weight[:, : self.input_size], self.i2h.bias)

    def step(self, u_t: Tensor, state: rnnlab.State, t: int) -> tuple[Tensor, rnnlab.State]:
        h = self._act(u_t + F.linear(state[0], self.recurrent_weight()))
        return h, (h,)

    def forward(self, x_t: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        h = self._act(self.i2h(torch.cat((x_t, state[0]), dim=1)))
        return h, (h,)

    def init_identity(self, scale: float, nonlinearity: str) -> None:
        with torch.no_grad():
            self.i2h.weight[:, self.input_size :].copy_(scale * torch.eye(self.hidden_size))
            self.i2h.bias.zero_()
        self.nonlinearity = nonlinearity

    # --- the tutorial's interface -------------------------------------------------------------
    def init_hidden(self) -> Tensor:
        return torch.zeros(1, self.hidden_size)

    def tutorial_forward(self, input: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """The tutorial's ``output, hidden = rnn(input, hidden)``: log-probabilities."""
        if self.i2o is None:
            raise ValueError("SimpleRNN.tutorial_forward needs Params(output_size=...)")
        combined = torch.cat((input, hidden), dim=1)
        hidden = self._act(self.i2h(combined))
        output = self.softmax(self.i2o(combined))
        return output, hidden
