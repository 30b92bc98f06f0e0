"""Oscillator RNNs of Rusch & Mishra: coRNN, UnICORNN and LEM.

Each carries two vectors, (y, z); y is h_t, the state the authors read out and rnnlab probes
(``state[0]``), and z its velocity (coRNN, UnICORNN) or second time scale (LEM). Every update
adds to the previous state (y_t = y_{t-1} + ..., or an interpolation), so all three are
``additive``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn

import rnnlab


def _two_vectors(
    cell: rnnlab.Cell, batch: int, device: torch.device | None, dtype: torch.dtype | None
) -> rnnlab.State:
    zeros = torch.zeros(batch, cell.hidden_size, device=device, dtype=dtype)
    return (zeros, zeros)


def _init_blocks(weight: Tensor, blocks: int, init: rnnlab.RecurrentInitializer) -> None:
    """``init`` on each of ``weight``'s ``blocks`` row blocks, written into ``weight``."""
    with torch.no_grad():
        for block in weight.chunk(blocks, dim=0):
            fresh = torch.empty_like(block)
            init(fresh)
            block.copy_(fresh)


class CoRNNCell(rnnlab.Cell):
    """z_t = z_{t-1} + dt (tanh(W y_{t-1} + W_z z_{t-1} + V x_t + b) - gamma y_{t-1} -
    epsilon z_{t-1}); y_t = y_{t-1} + dt z_t; h_t = y_t.

    The coupled oscillatory RNN (Rusch & Mishra 2021, "Coupled oscillatory recurrent neural
    network (coRNN): an accurate and (gradient) stable architecture for learning long time
    dependencies", ICLR): a network of damped, driven nonlinear oscillators y'' = tanh(...) -
    gamma y - epsilon y', discretised so that y uses the new z (an implicit-explicit step);
    states and their gradients stay bounded. State (y, z). W, W_z, V and b start as the
    authors' single ``nn.Linear(n_inp + 2 n_hid, n_hid)`` does: uniform in +-1/sqrt(n_inp +
    2 n_hid).

    Source: the authors' code (github.com/tk-rusch/coRNN, ``psMNIST/network.py``, class
    ``coRNNCell``, and ``psMNIST/psMNIST_task.py`` for the defaults: dt 0.076, gamma 0.4,
    epsilon 8.0 with 256 units, Adam 0.0054, batch 120); checked against those files. Their
    other scripts: sMNIST dt 0.042, gamma 2.7, epsilon 4.7; the adding problem dt 0.06 (
    ``--dt 6e-2``), gamma 66, epsilon 15 (``adding/adding_task.py``).

    Deviations: none in the update, which is the code's line for line (the damping term uses
    z_{t-1}); the code's one weight over [x, z, y] is three matrices here (V, W_z, W) with the
    same initial distribution, so that ``recurrent_weight()`` is W, the matrix multiplying y.
    """

    class Params(rnnlab.Params):
        dt: float = Field(0.076, gt=0, description="time step dt (authors' psMNIST: 0.076)")
        gamma: float = Field(
            0.4, ge=0, description="restoring force gamma on y (authors' psMNIST: 0.4)"
        )
        epsilon: float = Field(
            8.0, ge=0, description="damping epsilon on z (authors' psMNIST: 8.0)"
        )

    params: Params
    additive: ClassVar[bool] = True  # y_t = y_{t-1} + dt z_t
    capabilities: ClassVar[frozenset[str]] = frozenset({"recurrent_init"})

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        self.input = nn.Linear(input_size, hidden_size)  # V, b
        self.w_y = nn.Linear(hidden_size, hidden_size, bias=False)  # W
        self.w_z = nn.Linear(hidden_size, hidden_size, bias=False)  # W_z
        bound = 1 / math.sqrt(input_size + 2 * hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> rnnlab.State:
        return _two_vectors(self, batch, device, dtype)

    def project_inputs(self, x: Tensor) -> Tensor:
        out: Tensor = self.input(x)
        return out

    def step(self, u_t: Tensor, state: rnnlab.State, t: int) -> tuple[Tensor, rnnlab.State]:
        y, z = state[0], state[1]
        p = self.params
        drive = torch.tanh(u_t + self.w_y(y) + self.w_z(z))
        z = z + p.dt * (drive - p.gamma * y - p.epsilon * z)
        y = y + p.dt * z
        return y, (y, z)

    def forward(self, x_t: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        return self.step(self.project_inputs(x_t), state, 0)

    def recurrent_weight(self) -> Tensor:
        """W, the parameter multiplying y_{t-1} (W_z, on z, is not h's)."""
        return self.w_y.weight

    def init_recurrent(self, init: rnnlab.RecurrentInitializer) -> None:
        """``init`` on W (capability ``recurrent_init``); W_z and V keep theirs."""
        _init_blocks(self.w_y.weight, 1, init)

    def input_weight(self) -> Tensor:
        return self.input.weight


class UnICORNNCell(rnnlab.Cell):
    """z_t = z_{t-1} - dt sigmoid(c) * (tanh(w * y_{t-1} + V x_t + b) + alpha y_{t-1});
    y_t = y_{t-1} + dt sigmoid(c) * z_t; h_t = y_t.

    The undamped independent controlled oscillatory RNN (Rusch & Mishra 2021, "UnICORNN: a
    recurrent model for learning very long time dependencies", ICML): uncoupled oscillators
    (the recurrent weight w is a vector, one per unit) with a learned time step dt sigmoid(c)
    per unit; the step is symplectic, so states can be rebuilt backwards from the last one (the
    authors' CUDA kernel does, to save memory). State (y, z). w starts U(0, 1), c U(-0.1, 0.1),
    V Kaiming-uniform with a = 8 (fan in), b = 0.

    Source: the authors' code (github.com/tk-rusch/unicornn, ``psMNIST/network.py``: the
    kernel ``unicornn_fwd``, ``UnICORNN_recurrence.reset_parameters``, ``UnICORNN.init_weights``;
    ``psMNIST/psMNIST_task.py`` for dt 0.19 and alpha 30.65 with 3 layers of 256, lr 0.00251,
    batch 32); checked against those files.

    Deviations: autograd through the stored states replaces the kernel's backward that rebuilds
    them (the same gradient, more memory); the model's dropout over time between layers is not
    part of the cell.
    """

    class Params(rnnlab.Params):
        dt: float = Field(
            0.19,
            gt=0,
            description="largest time step dt, scaled by sigmoid(c) per unit "
            "(authors' psMNIST: 0.19)",
        )
        alpha: float = Field(
            30.65, ge=0, description="restoring force alpha on y (authors' psMNIST: 30.65)"
        )

    params: Params
    additive: ClassVar[bool] = True  # y_t = y_{t-1} + dt sigmoid(c) z_t

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        self.input = nn.Linear(input_size, hidden_size)  # V, b
        nn.init.kaiming_uniform_(self.input.weight, a=8, mode="fan_in")
        nn.init.zeros_(self.input.bias)
        self.w = nn.Parameter(torch.empty(hidden_size).uniform_(0, 1))
        self.c = nn.Parameter(torch.empty(hidden_size).uniform_(-0.1, 0.1))

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> rnnlab.State:
        return _two_vectors(self, batch, device, dtype)

    def project_inputs(self, x: Tensor) -> Tensor:
        out: Tensor = self.input(x)
        return out

    def step(self, u_t: Tensor, state: rnnlab.State, t: int) -> tuple[Tensor, rnnlab.State]:
        y, z = state[0], state[1]
        dt = self.params.dt * torch.sigmoid(self.c)
        z = z - dt * (torch.tanh(self.w * y + u_t) + self.params.alpha * y)
        y = y + dt * z
        return y, (y, z)

    def forward(self, x_t: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        return self.step(self.project_inputs(x_t), state, 0)

    def recurrent_weight(self) -> Tensor:
        return torch.diag(self.w)

    def input_weight(self) -> Tensor:
        return self.input.weight


class LEMCell(rnnlab.Cell):
    """dt1_t = dt sigmoid(W_1 y_{t-1} + V_1 x_t + b_1), dt2_t = dt sigmoid(W_2 y_{t-1} + V_2
    x_t + b_2); z_t = (1 - dt1_t) * z_{t-1} + dt1_t * tanh(W_z y_{t-1} + V_z x_t + b_z);
    y_t = (1 - dt2_t) * y_{t-1} + dt2_t * tanh(W_y z_t + V_y x_t + b_y); h_t = y_t.

    Long expressive memory (Rusch, Mishra, Erichson & Mahoney 2022, "Long expressive memory
    for sequence modeling", ICLR): two coupled time scales whose learned, input- and
    state-dependent steps dt1 and dt2 (both at most dt) make it a multiscale ODE discretised
    with gated Euler steps. State (y, z). Every weight and bias starts uniform in
    +-1/sqrt(hidden_size), as published.

    Source: the authors' code (github.com/tk-rusch/LEM, ``src/sMNIST/network.py``, class
    ``LEMCell``: ``inp2hid`` (4 blocks), ``hid2hid`` (3 blocks), ``transform_z``,
    ``reset_parameters``; ``src/sMNIST/sMNIST_task.py`` for dt 0.21 with 128 units, Adam 0.0018,
    batch 128, clipping at 1.0); checked against those files. Their adding problem at
    T = 10000 uses dt 0.0242 (``src/adding/adding_task.py``).

    Deviations: none. In the code's names, ``ms_dt`` (the second input block) is dt1 and gates
    z, ``ms_dt_bar`` (the first) is dt2 and gates y; the parameters keep the code's layout, so
    its weights load as they are.
    """

    class Params(rnnlab.Params):
        dt: float = Field(
            0.21,
            gt=0,
            description="largest time step dt (authors' sMNIST: 0.21; adding T=10000: 0.0242)",
        )

    params: Params
    additive: ClassVar[bool] = True  # both updates interpolate from the previous state
    capabilities: ClassVar[frozenset[str]] = frozenset({"recurrent_init"})

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        self.inp2hid = nn.Linear(input_size, 4 * hidden_size)  # [V_2; V_1; V_y; V_z] as coded
        self.hid2hid = nn.Linear(hidden_size, 3 * hidden_size)  # [W_2; W_1; W_z]
        self.transform_z = nn.Linear(hidden_size, hidden_size)  # W_y
        bound = 1 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> rnnlab.State:
        return _two_vectors(self, batch, device, dtype)

    def project_inputs(self, x: Tensor) -> Tensor:
        out: Tensor = self.inp2hid(x)
        return out

    def step(self, u_t: Tensor, state: rnnlab.State, t: int) -> tuple[Tensor, rnnlab.State]:
        y, z = state[0], state[1]
        i_dt_bar, i_dt, i_y, i_z = u_t.chunk(4, dim=-1)  # the code's i_dt1, i_dt2, i_z, i_y
        h_dt_bar, h_dt, h_z = self.hid2hid(y).chunk(3, dim=-1)
        dt = self.params.dt
        dt_bar = dt * torch.sigmoid(i_dt_bar + h_dt_bar)  # dt2: gates y
        dt_z = dt * torch.sigmoid(i_dt + h_dt)  # dt1: gates z
        z = (1 - dt_z) * z + dt_z * torch.tanh(i_z + h_z)
        y = (1 - dt_bar) * y + dt_bar * torch.tanh(self.transform_z(z) + i_y)
        return y, (y, z)

    def forward(self, x_t: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        return self.step(self.project_inputs(x_t), state, 0)

    def recurrent_weight(self) -> Tensor:
        """hid2hid's weight, ``[3H, H]``: W_2, W_1, W_z stacked, all multiplying y_{t-1}
        (W_y multiplies z_t, not h)."""
        return self.hid2hid.weight

    def init_recurrent(self, init: rnnlab.RecurrentInitializer) -> None:
        """``init`` on each of hid2hid's three H x H blocks (capability ``recurrent_init``)."""
        _init_blocks(self.hid2hid.weight, 3, init)

    def input_weight(self) -> Tensor:
        return self.inp2hid.weight
