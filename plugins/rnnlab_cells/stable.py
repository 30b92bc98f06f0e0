"""Stable by construction: AntisymmetricRNN and the Lipschitz RNN, Euler steps of ODEs whose
Jacobians have eigenvalues near the imaginary axis (or left of it)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F

import rnnlab


class AntisymmetricCell(rnnlab.Cell):
    """h_t = h_{t-1} + eps * tanh((W - W^T - gamma I) h_{t-1} + V_h x_t + b_h); gated:
    h_t = h_{t-1} + eps * z_t * tanh(...), z_t = sigmoid((W - W^T - gamma I) h_{t-1} + V_z x_t
    + b_z).

    AntisymmetricRNN (Chang, Chen, Haber & Chi 2019, "AntisymmetricRNN: a dynamical system
    view on recurrent neural networks", ICLR): the forward Euler step, of size eps, of
    h' = tanh(M h + V x + b) with M = W - W^T - gamma I. An antisymmetric W - W^T has purely
    imaginary eigenvalues, so the ODE neither explodes nor dissipates; the diffusion gamma
    shifts them left to make the Euler step stable. The gate (``gated``) is the paper's
    equation with the same M in gate and update. Initialisation as in the paper's appendix C:
    input matrices N(0, 1/input_size), W N(0, sigma_w^2 / hidden_size), biases 0.

    Source: the paper (no code was released; its appendix C tunes eps in {0.01, 0.1, 1},
    sigma_w in {0, 1, 2, 4, 8, 16} and gamma on a grid, per task). The defaults eps = gamma =
    0.01, sigma_w = 1 are a point of those grids (the one third-party PyTorch ports use), not a
    published per-task choice: the paper's per-task table was not available to check. The
    Lipschitz RNN authors' ``asymRNN`` (github.com/erichson/LipschitzRNN, ``models.py``)
    computes the same ungated update.

    Deviations: none known. ``recurrent_weight()`` is M, the matrix multiplying h_{t-1}.
    """

    class Params(rnnlab.Params):
        eps: float = Field(
            0.01, gt=0, description="Euler step size eps (the paper's grid: 0.01, 0.1, 1)"
        )
        gamma: float = Field(
            0.01, ge=0, description="diffusion gamma, M = W - W^T - gamma I (tuned per task)"
        )
        gated: bool = Field(False, description="the paper's input-dependent gate z_t")
        sigma_w: float = Field(
            1.0, ge=0, description="W starts N(0, sigma_w^2 / hidden_size) (paper's grid 0-16)"
        )

    params: Params
    additive: ClassVar[bool] = True  # h_t = h_{t-1} + eps * ...

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        width = 2 * hidden_size if self.params.gated else hidden_size
        self.input = nn.Linear(input_size, width)  # [V_h; V_z], [b_h; b_z]
        self.w = nn.Parameter(torch.empty(hidden_size, hidden_size))
        with torch.no_grad():
            self.input.weight.normal_(0.0, 1 / math.sqrt(input_size))
            self.input.bias.zero_()
            self.w.normal_(0.0, self.params.sigma_w / math.sqrt(hidden_size))

    def matrix(self) -> Tensor:
        """M = W - W^T - gamma I."""
        eye = torch.eye(self.hidden_size, device=self.w.device, dtype=self.w.dtype)
        return self.w - self.w.T - self.params.gamma * eye

    def project_inputs(self, x: Tensor) -> Tensor:
        out: Tensor = self.input(x)
        return out

    def step(self, u_t: Tensor, state: rnnlab.State, t: int) -> tuple[Tensor, rnnlab.State]:
        h = state[0]
        mh = F.linear(h, self.matrix())
        if self.params.gated:
            u_h, u_z = u_t.chunk(2, dim=-1)
            update = torch.sigmoid(mh + u_z) * torch.tanh(mh + u_h)
        else:
            update = torch.tanh(mh + u_t)
        h = h + self.params.eps * update
        return h, (h,)

    def forward(self, x_t: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        return self.step(self.project_inputs(x_t), state, 0)

    def recurrent_weight(self) -> Tensor:
        return self.matrix()

    def input_weight(self) -> Tensor:
        return self.input.weight


class LipschitzCell(rnnlab.Cell):
    """h_t = h_{t-1} + eps (A h_{t-1} + tanh(W h_{t-1} + U x_t + b)), A = (1 - beta)(M_A +
    M_A^T) + beta (M_A - M_A^T) - gamma I, W likewise from M_W.

    The Lipschitz RNN (Erichson, Azencot, Queiruga, Hodgkinson & Mahoney 2021, "Lipschitz
    recurrent neural networks", ICLR): the forward Euler step, of size eps, of h' = A h +
    tanh(W h + U x + b), a linear part plus a 1-Lipschitz nonlinearity. beta mixes symmetric and
    skew-symmetric parts (beta = 1: skew, eigenvalues on the imaginary axis) and gamma shifts
    them left, which gives the paper's conditions for global stability. M_A and M_W start
    N(0, (init_std / hidden_size)^2) (the code's ``gaussian_init_``, whose std is init_std / n);
    U and b are ``nn.Linear``'s default.

    Source: the authors' code (github.com/erichson/LipschitzRNN: ``models.py``, branch
    ``LipschitzRNN`` of ``RnnModels``; ``tools.py`` for ``gaussian_init_``; ``driver.py`` for
    init_std 0.1; ``README.md`` for the MNIST commands: 128 units, eps 0.03, beta 0.75,
    gamma 0.001, Adam 0.003, and 0.0035 for permuted MNIST); checked against those files. The
    code uses one beta and one gamma for A and W, as here; REFERENCES.md's table has beta 0.65
    (sMNIST) / 0.8 (psMNIST) and eps 0.01 from the paper's tables, not re-checked here.

    Deviations: the code multiplies from the left (h A); rnnlab's A h is the same model with
    M_A and M_W transposed, which their symmetric initial distribution does not change. The
    code's ``alpha`` (an ablation factor on A h, default 1), its gated variant and its ODE-solver
    variant are not offered. ``recurrent_weight()`` is A, the linear part the stability
    conditions are about.
    """

    class Params(rnnlab.Params):
        eps: float = Field(0.03, gt=0, description="Euler step size eps (authors' MNIST: 0.03)")
        beta: float = Field(
            0.75, ge=0, le=1, description="skew-symmetric share of A and W (authors' MNIST: 0.75)"
        )
        gamma: float = Field(
            0.001, ge=0, description="diagonal shift gamma of A and W (authors' MNIST: 0.001)"
        )
        init_std: float = Field(
            0.1, ge=0, description="M_A, M_W start N(0, (init_std / hidden_size)^2) (code: 0.1)"
        )

    params: Params
    additive: ClassVar[bool] = True  # h_t = h_{t-1} + eps * ...

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        self.input = nn.Linear(input_size, hidden_size)  # U, b
        self.m_a = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.m_w = nn.Parameter(torch.empty(hidden_size, hidden_size))
        std = self.params.init_std / hidden_size
        with torch.no_grad():
            self.m_a.normal_(0.0, std)
            self.m_w.normal_(0.0, std)

    def mixed(self, m: Tensor) -> Tensor:
        """(1 - beta)(M + M^T) + beta (M - M^T) - gamma I."""
        p = self.params
        eye = torch.eye(self.hidden_size, device=m.device, dtype=m.dtype)
        return (1 - p.beta) * (m + m.T) + p.beta * (m - m.T) - p.gamma * eye

    def project_inputs(self, x: Tensor) -> Tensor:
        out: Tensor = self.input(x)
        return out

    def step(self, u_t: Tensor, state: rnnlab.State, t: int) -> tuple[Tensor, rnnlab.State]:
        h = state[0]
        a, w = self.mixed(self.m_a), self.mixed(self.m_w)
        h = h + self.params.eps * (F.linear(h, a) + torch.tanh(F.linear(h, w) + u_t))
        return h, (h,)

    def forward(self, x_t: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        return self.step(self.project_inputs(x_t), state, 0)

    def recurrent_weight(self) -> Tensor:
        return self.mixed(self.m_a)

    def input_weight(self) -> Tensor:
        return self.input.weight
