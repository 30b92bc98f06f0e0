"""Cells with a fused torch twin (nn.RNN, nn.LSTM, nn.GRU): same parameters, same results.

Each cell owns a one-layer torch module. Unprobed training steps run that module (fused, cuDNN on a
GPU); the step path below reads the very same parameter tensors, so a probed step is exact.
Gate order and formulas are torch's (LSTM: i, f, g, o; GRU: r, z, n).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F

import rnnlab
from rnnlab.base import Cell, Normalizer, NormalizerFactory, State


class _TwinCell(Cell):
    """Shared machinery: the torch module, hoisted input projection, optional normalisers."""

    gates: ClassVar[int] = 1
    capabilities: ClassVar[frozenset[str]] = frozenset({"normalize"})

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        self.rnn = self._make_module()
        self.norm_input: Normalizer | None = None
        self.norm_hidden: Normalizer | None = None

    def _make_module(self) -> nn.RNNBase:
        raise NotImplementedError

    # the step path reads the fused module's own parameter tensors
    @property
    def weight_ih(self) -> Tensor:
        return self.rnn.weight_ih_l0  # type: ignore[return-value]

    @property
    def weight_hh(self) -> Tensor:
        return self.rnn.weight_hh_l0  # type: ignore[return-value]

    @property
    def bias_ih(self) -> Tensor:
        return self.rnn.bias_ih_l0  # type: ignore[return-value]

    @property
    def bias_hh(self) -> Tensor:
        return self.rnn.bias_hh_l0  # type: ignore[return-value]

    @property
    def has_fused(self) -> bool:
        return self.norm_input is None and self.norm_hidden is None

    def set_normalizers(self, make: NormalizerFactory) -> None:
        width = self.gates * self.hidden_size
        self.norm_input = make(width, "input")
        self.norm_hidden = make(width, "hidden")

    def recurrent_weight(self) -> Tensor:
        return self.weight_hh

    def project_inputs(self, x: Tensor) -> Tensor:
        if self.norm_input is None:
            return F.linear(x, self.weight_ih, self.bias_ih)
        # normalise W_x x and W_h h separately (Cooijmans et al. 2016); the bias comes after
        if x.dim() == 3:
            return self.norm_input(F.linear(x, self.weight_ih), None) + self.bias_ih
        return self.norm_input(F.linear(x, self.weight_ih), 0) + self.bias_ih

    def hidden_term(self, h: Tensor, t: int) -> Tensor:
        if self.norm_hidden is None:
            return F.linear(h, self.weight_hh, self.bias_hh)
        return self.norm_hidden(F.linear(h, self.weight_hh), t) + self.bias_hh

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        return self.step(self.project_inputs(x_t), state, 0)

    def forward_fused(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        out, last = self.rnn(x, state[0].unsqueeze(0))
        return out, (last[0],)


class ElmanCell(_TwinCell):
    """Elman RNN, h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) with f = tanh or relu (nn.RNN)."""

    class Params(rnnlab.Params):
        nonlinearity: Literal["tanh", "relu"] = Field("tanh", description="f in the update")

    capabilities: ClassVar[frozenset[str]] = frozenset({"normalize", "identity_init"})

    def _make_module(self) -> nn.RNNBase:
        return nn.RNN(self.input_size, self.hidden_size, nonlinearity=self.params.nonlinearity)  # type: ignore[attr-defined]

    def step(self, u_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        a = u_t + self.hidden_term(state[0], t)
        h = torch.relu(a) if self.rnn.nonlinearity == "relu" else torch.tanh(a)
        return h, (h,)

    def init_identity(self, scale: float, nonlinearity: str) -> None:
        """IRNN (Le et al. 2015): W_hh = scale * I, zero recurrent and input biases."""
        with torch.no_grad():
            self.weight_hh.copy_(scale * torch.eye(self.hidden_size))
            self.bias_hh.zero_()
            self.bias_ih.zero_()
        self.rnn.nonlinearity = nonlinearity
        self.rnn.mode = "RNN_RELU" if nonlinearity == "relu" else "RNN_TANH"


class LSTMCell(_TwinCell):
    """LSTM (Hochreiter & Schmidhuber 1997) exactly as nn.LSTM; optional forget-gate bias."""

    class Params(rnnlab.Params):
        forget_bias: float = Field(
            0.0, description="added to the forget gate's bias at initialisation (1.0 is common)"
        )

    gates = 4

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        self.norm_cell: Normalizer | None = None
        forget_bias = self.params.forget_bias  # type: ignore[attr-defined]
        if forget_bias:
            with torch.no_grad():
                self.bias_hh[hidden_size : 2 * hidden_size] += forget_bias

    def _make_module(self) -> nn.RNNBase:
        return nn.LSTM(self.input_size, self.hidden_size)

    def set_normalizers(self, make: NormalizerFactory) -> None:
        super().set_normalizers(make)
        self.norm_cell = make(self.hidden_size, "cell")

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        zeros = torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)
        return (zeros, zeros)

    def step(self, u_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        h, c = state
        i, f, g, o = (u_t + self.hidden_term(h, t)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        c_out = c if self.norm_cell is None else self.norm_cell(c, t)
        h = torch.sigmoid(o) * torch.tanh(c_out)
        return h, (h, c)

    def forward_fused(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        out, (h, c) = self.rnn(x, (state[0].unsqueeze(0), state[1].unsqueeze(0)))
        return out, (h[0], c[0])


class GRUCell(_TwinCell):
    """GRU (Cho et al. 2014) exactly as nn.GRU: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""

    gates = 3

    def _make_module(self) -> nn.RNNBase:
        return nn.GRU(self.input_size, self.hidden_size)

    def step(self, u_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        h = state[0]
        ur, uz, un = u_t.chunk(3, dim=-1)
        vr, vz, vn = self.hidden_term(h, t).chunk(3, dim=-1)
        r = torch.sigmoid(ur + vr)
        z = torch.sigmoid(uz + vz)
        n = torch.tanh(un + r * vn)
        h = n + z * (h - n)  # = (1 - z) * n + z * h
        return h, (h,)
