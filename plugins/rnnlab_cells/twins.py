"""Cells with a fused torch twin (nn.RNN, nn.LSTM, nn.GRU): same parameters, same results.

Each cell owns a one-layer torch module. Unprobed training steps run that module (fused, cuDNN on a
GPU); the step path below reads the very same parameter tensors, so a probed step is exact.
Gate order and formulas are torch's (LSTM: i, f, g, o; GRU: r, z, n).

Normalisers (capability ``normalize``, used by the ``batchnorm`` and ``layernorm`` remedies) come
in two forms. ``summed``: one normaliser per gate on that gate's summed pre-activation
W_x x_t + W_h h_{t-1}, the biases added after it, as Ba et al. 2016 (section 3.1) define the
layer-normalised RNN, h_t = f(g / sigma_t * (a_t - mu_t) + b). ``separate``: W_x x_t and
W_h h_{t-1} each normalised on its own over all gates together, the biases added after them, as in
Cooijmans et al. 2016's BN-LSTM and Ba et al.'s LN-LSTM (supplementary, eq. 20-22: LN(W_h h) +
LN(W_x x) + b; their code, ryankiros/layer-norm, normalises over all four gates at once). An
LSTM also normalises its cell state before the output tanh in both forms (both papers do).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F

import rnnlab
from rnnlab import Cell, Normalizer, NormalizerFactory, NormTerms, State


class _TwinCell(Cell):
    """Shared machinery: the torch module, hoisted input projection, optional normalisers."""

    gates: ClassVar[int] = 1
    capabilities: ClassVar[frozenset[str]] = frozenset({"normalize", "recurrent_init"})

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        self.rnn = self._make_module()
        self.norm_input: Normalizer | None = None  # separate terms: W_x x_t
        self.norm_hidden: Normalizer | None = None  # separate terms: W_h h_{t-1}
        self.norm_summed: nn.ModuleList | None = None  # summed: one Normalizer per gate

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
        return self.norm_input is None and self.norm_hidden is None and self.norm_summed is None

    def set_normalizers(self, make: NormalizerFactory, terms: NormTerms) -> None:
        if terms == "summed":
            self.norm_summed = nn.ModuleList(
                make(self.hidden_size, "summed") for _ in range(self.gates)
            )
        elif terms == "separate":
            width = self.gates * self.hidden_size
            self.norm_input = make(width, "input")
            self.norm_hidden = make(width, "hidden")
        else:
            raise ValueError(f"terms must be 'summed' or 'separate', got {terms!r}")

    def recurrent_weight(self) -> Tensor:
        """W_hh itself, the torch module's parameter: ``[gates * H, H]``, the gates stacked in
        torch's order (LSTM i, f, g, o; GRU r, z, n)."""
        return self.weight_hh

    def init_recurrent(self, init: rnnlab.RecurrentInitializer) -> None:
        """``init`` on each gate's H x H block of W_hh, written into the fused module's own
        parameter (capability ``recurrent_init``); the biases are kept."""
        with torch.no_grad():
            for block in self.weight_hh.chunk(self.gates, dim=0):
                fresh = torch.empty_like(block)
                init(fresh)
                block.copy_(fresh)

    def input_weight(self) -> Tensor:
        return self.weight_ih

    def per_gate(self, a: Tensor, t: int) -> Tensor:
        """Each gate's chunk of ``a`` through its own summed-form normaliser."""
        assert self.norm_summed is not None
        chunks = a.chunk(self.gates, dim=-1)
        return torch.cat([n(c, t) for n, c in zip(self.norm_summed, chunks, strict=True)], -1)

    def preactivation(self, u_t: Tensor, h: Tensor, t: int) -> Tensor:
        """Every gate's pre-activation at step t, normalisers and biases applied."""
        if self.norm_summed is not None:  # Ba et al.: normalise the sum, then add the biases
            summed = u_t + F.linear(h, self.weight_hh)
            return self.per_gate(summed, t) + self.bias_ih + self.bias_hh
        return u_t + self.hidden_term(h, t)

    def project_inputs(self, x: Tensor) -> Tensor:
        if self.norm_summed is not None:  # the bias comes after the normaliser, in the step
            return F.linear(x, self.weight_ih)
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

    params: Params
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"normalize", "identity_init", "recurrent_init"}
    )

    def _make_module(self) -> nn.RNNBase:
        return nn.RNN(self.input_size, self.hidden_size, nonlinearity=self.params.nonlinearity)

    def step(self, u_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        a = self.preactivation(u_t, state[0], t)
        h = torch.relu(a) if self.rnn.nonlinearity == "relu" else torch.tanh(a)
        return h, (h,)

    def init_identity(self, scale: float, nonlinearity: str) -> None:
        """IRNN (Le et al. 2015): W_hh = scale * I, zero recurrent and input biases. The nn.RNN
        is rebuilt with ``nonlinearity`` (torch fixes it when the module is made), its weights
        kept; making it draws nothing from the run's random stream."""
        with torch.random.fork_rng(devices=[]):  # its fresh weights are overwritten below
            rebuilt = nn.RNN(self.input_size, self.hidden_size, nonlinearity=nonlinearity)
        rebuilt.load_state_dict(self.rnn.state_dict())
        self.rnn = rebuilt.to(self.weight_hh.device, self.weight_hh.dtype)
        with torch.no_grad():
            self.weight_hh.copy_(scale * torch.eye(self.hidden_size))
            self.bias_hh.zero_()
            self.bias_ih.zero_()

    def step_jacobian(self, u_t: Tensor, state: State, t: int) -> Tensor | None:
        """dh_t/dh_{t-1} = diag(f'(a_t)) W_hh, ``[B, H, H]`` (the seam of rnnlab.step_jacobian);
        None with normalisers set, where autograd differentiates through them."""
        if not self.has_fused:  # normalisers inside the step
            return None
        a = u_t + F.linear(state[0], self.weight_hh, self.bias_hh)
        if self.rnn.nonlinearity == "relu":
            slope = (a > 0).to(a.dtype)  # relu's derivative at 0 is 0, as autograd's
        else:
            slope = 1 - torch.tanh(a).square()
        return slope.unsqueeze(-1) * self.weight_hh


class LSTMCell(_TwinCell):
    """LSTM (Hochreiter & Schmidhuber 1997) exactly as nn.LSTM; optional forget-gate bias."""

    class Params(rnnlab.Params):
        forget_bias: float = Field(
            0.0, description="added to the forget gate's bias at initialisation (1.0 is common)"
        )

    params: Params
    gates = 4
    additive = True  # c_t = f * c_{t-1} + i * g

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        self.norm_cell: Normalizer | None = None
        forget_bias = self.params.forget_bias
        if forget_bias:
            with torch.no_grad():
                self.bias_hh[hidden_size : 2 * hidden_size] += forget_bias

    def _make_module(self) -> nn.RNNBase:
        return nn.LSTM(self.input_size, self.hidden_size)

    def set_normalizers(self, make: NormalizerFactory, terms: NormTerms) -> None:
        super().set_normalizers(make, terms)
        self.norm_cell = make(self.hidden_size, "cell")

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        zeros = torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)
        return (zeros, zeros)

    def step(self, u_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        h, c = state
        i, f, g, o = self.preactivation(u_t, h, t).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        c_out = c if self.norm_cell is None else self.norm_cell(c, t)
        h = torch.sigmoid(o) * torch.tanh(c_out)
        return h, (h, c)

    def forward_fused(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        out, (h, c) = self.rnn(x, (state[0].unsqueeze(0), state[1].unsqueeze(0)))
        return out, (h[0], c[0])

    def step_jacobian(self, u_t: Tensor, state: State, t: int) -> Tensor | None:
        """d(h_t, c_t)/d(h_{t-1}, c_{t-1}), ``[B, 2H, 2H]``, h's rows and columns first (the
        seam of rnnlab.step_jacobian); None with normalisers set, where autograd takes over."""
        if not self.has_fused:  # normalisers inside the step
            return None
        h, c = state
        i, f, g, o = (u_t + F.linear(h, self.weight_hh, self.bias_hh)).chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        tanh_c = torch.tanh(f * c + i * g)
        w_i, w_f, w_g, w_o = (w.unsqueeze(0) for w in self.weight_hh.chunk(4, dim=0))
        # c_t = f c + i g: h_{t-1} reaches it through the rows of W_hh of f, i and g
        dc_dh = (
            (c * f * (1 - f)).unsqueeze(-1) * w_f
            + (g * i * (1 - i)).unsqueeze(-1) * w_i
            + (i * (1 - g.square())).unsqueeze(-1) * w_g
        )
        through_c = o * (1 - tanh_c.square())  # dh_t/dc_t for h_t = o tanh(c_t)
        dh_dh = (tanh_c * o * (1 - o)).unsqueeze(-1) * w_o + through_c.unsqueeze(-1) * dc_dh
        top = torch.cat([dh_dh, torch.diag_embed(through_c * f)], dim=-1)
        bottom = torch.cat([dc_dh, torch.diag_embed(f)], dim=-1)
        return torch.cat([top, bottom], dim=-2)


class GRUCell(_TwinCell):
    """GRU (Cho et al. 2014) exactly as nn.GRU: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""

    gates = 3
    additive = True  # h_t = z * h_{t-1} + (1 - z) * n

    def _make_module(self) -> nn.RNNBase:
        return nn.GRU(self.input_size, self.hidden_size)

    def step(self, u_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        h = state[0]
        if self.norm_summed is not None:
            return self._summed_step(u_t, h, t)
        ur, uz, un = u_t.chunk(3, dim=-1)
        vr, vz, vn = self.hidden_term(h, t).chunk(3, dim=-1)
        r = torch.sigmoid(ur + vr)
        z = torch.sigmoid(uz + vz)
        n = torch.tanh(un + r * vn)
        h = n + z * (h - n)  # = (1 - z) * n + z * h
        return h, (h,)

    def _summed_step(self, u_t: Tensor, h: Tensor, t: int) -> tuple[Tensor, State]:
        # the candidate's summed pre-activation is W_in x + r * W_hn h (r gates the recurrent
        # term, as in nn.GRU); each gate's biases come after its normaliser
        assert self.norm_summed is not None
        norm_r, norm_z, norm_n = self.norm_summed
        ur, uz, un = u_t.chunk(3, dim=-1)
        vr, vz, vn = F.linear(h, self.weight_hh).chunk(3, dim=-1)
        bir, biz, bin_ = self.bias_ih.chunk(3)
        bhr, bhz, bhn = self.bias_hh.chunk(3)
        r = torch.sigmoid(norm_r(ur + vr, t) + bir + bhr)
        z = torch.sigmoid(norm_z(uz + vz, t) + biz + bhz)
        n = torch.tanh(norm_n(un + r * vn, t) + bin_ + r * bhn)
        h = n + z * (h - n)
        return h, (h,)

    def step_jacobian(self, u_t: Tensor, state: State, t: int) -> Tensor | None:
        """dh_t/dh_{t-1}, ``[B, H, H]`` (the seam of rnnlab.step_jacobian); None with normalisers
        set, where autograd takes over."""
        if not self.has_fused:  # normalisers inside the step
            return None
        h = state[0]
        ur, uz, un = u_t.chunk(3, dim=-1)
        vr, vz, vn = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
        r, z = torch.sigmoid(ur + vr), torch.sigmoid(uz + vz)
        n = torch.tanh(un + r * vn)
        w_r, w_z, w_n = (w.unsqueeze(0) for w in self.weight_hh.chunk(3, dim=0))
        # n = tanh(u_n + r (W_hn h + b_hn)): through r's rows and W_hn's
        slope = 1 - n.square()
        dn_dh = (slope * vn * r * (1 - r)).unsqueeze(-1) * w_r + (slope * r).unsqueeze(-1) * w_n
        # h_t = n + z (h - n) = (1 - z) n + z h
        dz_dh = (z * (1 - z)).unsqueeze(-1) * w_z
        return (1 - z).unsqueeze(-1) * dn_dh + (h - n).unsqueeze(-1) * dz_dh + torch.diag_embed(z)
