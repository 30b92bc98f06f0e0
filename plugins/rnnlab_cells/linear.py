"""Linear recurrences trained by a parallel scan: the LRU, minGRU and minLSTM.

Each is h_t = a_t * h_{t-1} + b_t with a_t and b_t computed from the inputs alone, so besides the
step path (``project_inputs`` then ``step``) each has a fused path,
``forward_fused``, that computes the whole sequence with a scan from :mod:`rnnlab_cells.scan`
(:func:`rnnlab_cells.scan.chunked_scan`; tests/test_modern_cells.py holds it equal to the
loop to 1e-4 in outputs and gradients at T = 200 and 2000, and finite at T = 5000).

Probed steps run the scan too (``probes_fused``): the model's probe is added to b_t, and
backward through the scan is the adjoint recurrence delta_t = dl/dh_t + a_{t+1} * delta_{t+1}
(for the LRU, conj(Lambda) on the complex state), a reverse scan whose delta_t, the gradient of
b_t, is the probe's gradient: the total dL/dh_t of every t from the training backward itself
(tests/test_linear_probe.py holds the curves equal to the step loop's at T = 200).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn
from torch.nn import functional as F

import rnnlab
from rnnlab_cells.scan import chunked_scan


def g(x: Tensor) -> Tensor:
    """Feng et al.'s candidate activation: ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below,
    continuous at 0 and always positive, so the log-space scan applies."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


class LRUCell(rnnlab.Cell):
    """x_t = Lambda x_{t-1} + exp(gamma_log) * (B u_t), Lambda = diag(exp(-exp(nu_log) +
    i exp(theta_log))), complex diagonal; h_t = [Re x_t, Im x_t].

    The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting recurrent neural networks for
    long sequences", ICML). N = hidden_size / 2 complex units (hidden_size must be even). The
    eigenvalues start uniformly on the ring r_min <= |lambda| <= r_max (uniform in |lambda|^2)
    with phases uniform in [0, max_phase]; ``gamma_log`` starts at log sqrt(1 - |lambda|^2), the
    normalisation that keeps E|x_t|^2 equal to E|B u|^2 for white inputs, and then trains as a
    parameter of its own. B = B_re + i B_im with entries N(0, 1 / (2 input_size)).

    Source: the paper's recipe as its co-author Zucchet implements it in the minimal-LRU
    (github.com/NicolasZucchet/minimal-LRU, ``lru/model.py``: ``nu_init``, ``theta_init``,
    ``gamma_log_init``, ``B_re``/``B_im`` divided by sqrt(2 d_model), defaults r_min = 0,
    r_max = 1, max_phase = 6.28); checked against that file. The paper sets the ring per task
    (closer to 1 for its long-range tasks).

    What h_t is: rnnlab probes ``state[0]``, a real [B, H] tensor, so h_t is the complex state
    itself, its real parts then its imaginary parts. The gradient-flow curve ||dL/dh_t|| is then
    the norm of the gradient with respect to the complex state x_t (real and imaginary parts
    taken as independent coordinates), and ``recurrent_weight()`` is Lambda as the real
    2N x 2N matrix [[Re L, -Im L], [Im L, Re L]] that maps h_{t-1} to h_t (spectral norm and
    radius = max |lambda|).

    Deviations: the paper's output y_t = Re(C x_t) + D u_t is not computed inside the cell.
    The layer's output is h_t, and Re(C x_t) = [Re C, -Im C] h_t is a real linear map of it,
    which the model's head (and a next layer's input projection) already apply; the skip D u_t
    (a diagonal feedthrough of the layer's own input, which needs input_size = output width) is
    left out. The LRU block's MLP/GLU, normalisation and residual around the recurrence are
    the architecture around the cell, not the cell. Fused path: the chunked scan (the paper
    uses jax.lax.associative_scan), on Lambda as a complex tensor.
    """

    class Params(rnnlab.Params):
        r_min: float = Field(
            0.0, ge=0, lt=1, description="smallest initial |lambda| (minimal-LRU default: 0)"
        )
        r_max: float = Field(
            1.0, gt=0, le=1, description="largest initial |lambda| (minimal-LRU default: 1)"
        )
        max_phase: float = Field(
            6.28, gt=0, description="initial phases uniform in [0, max_phase] (default: 6.28)"
        )

        @model_validator(mode="after")
        def _ring(self) -> LRUCell.Params:
            if self.r_min >= self.r_max:
                raise ValueError(
                    f"r_min ({self.r_min}) must be below r_max ({self.r_max}): the eigenvalues "
                    "start on the ring between them"
                )
            return self

    params: Params
    additive: ClassVar[bool] = True  # x_t = Lambda x_{t-1} + ...: the state is carried on

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        if hidden_size % 2:
            raise ValueError(
                f"LRUCell: hidden_size must be even (h_t holds N complex units as real and "
                f"imaginary halves), got {hidden_size}"
            )
        n = hidden_size // 2
        self.units = n
        p = self.params
        mag2 = torch.rand(n, dtype=torch.float64) * (p.r_max**2 - p.r_min**2) + p.r_min**2
        mag2 = mag2.clamp(1e-12, 1 - 1e-12)  # |lambda| = 0 or 1 would give an infinite log
        nu_log = torch.log(-0.5 * torch.log(mag2))  # |lambda| = exp(-exp(nu_log))
        theta_log = torch.log(p.max_phase * torch.rand(n, dtype=torch.float64).clamp_min(1e-12))
        self.nu_log = nn.Parameter(nu_log.float())
        self.theta_log = nn.Parameter(theta_log.float())
        self.gamma_log = nn.Parameter(0.5 * torch.log1p(-mag2).float())  # log sqrt(1 - |l|^2)
        # [B_re; B_im]: row i < N gives Re(B u)_i, row N + i gives Im(B u)_i, so B u lands in
        # the same halves as h
        self.B = nn.Parameter(torch.randn(2 * n, input_size) / (2 * input_size) ** 0.5)

    def lambda_parts(self) -> tuple[Tensor, Tensor]:
        """Re Lambda and Im Lambda, real [N] each."""
        modulus = torch.exp(-torch.exp(self.nu_log))
        phase = torch.exp(self.theta_log)
        return modulus * torch.cos(phase), modulus * torch.sin(phase)

    def project_inputs(self, x: Tensor) -> Tensor:
        gamma = torch.exp(self.gamma_log).repeat(2)
        return F.linear(x, self.B) * gamma

    def step(self, u_t: Tensor, state: rnnlab.State, t: int) -> tuple[Tensor, rnnlab.State]:
        re, im = state[0].chunk(2, dim=-1)
        lr, li = self.lambda_parts()
        h = torch.cat([lr * re - li * im, li * re + lr * im], dim=-1) + u_t
        return h, (h,)

    def forward(self, x_t: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        return self.step(self.project_inputs(x_t), state, 0)

    @property
    def has_fused(self) -> bool:
        return True

    @property
    def probes_fused(self) -> bool:
        return True

    def forward_fused(self, x: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        return self._scan(self.project_inputs(x), state)

    def forward_fused_probed(
        self, x: Tensor, state: rnnlab.State, probe: Tensor
    ) -> tuple[Tensor, rnnlab.State]:
        """The probe joins b_t: x_t = Lambda x_{t-1} + b_t + probe_t, as the loop adds it."""
        return self._scan(self.project_inputs(x) + probe, state)

    def _scan(self, u: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        b = torch.complex(*u.chunk(2, dim=-1))
        h0 = torch.complex(*state[0].chunk(2, dim=-1))
        lam = torch.complex(*self.lambda_parts())  # the very numbers the step multiplies by
        states = chunked_scan(lam.reshape(1, 1, -1), b, h0)
        out = torch.cat([states.real, states.imag], dim=-1)
        return out, (out[-1],)

    def recurrent_weight(self) -> Tensor:
        lr, li = self.lambda_parts()
        re, im = torch.diag(lr), torch.diag(li)
        return torch.cat([torch.cat([re, -im], 1), torch.cat([im, re], 1)], 0)

    def input_weight(self) -> Tensor:
        return self.B


class _GatedScan(rnnlab.Cell):
    """minGRU's and minLSTM's shared paths: the step loop through ``step``, the training step
    and the probed step through ``_scan`` (h_t = a_t * h_{t-1} + b_t, the probe entering b_t)."""

    def forward(self, x_t: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        return self.step(self.project_inputs(x_t), state, 0)

    @property
    def has_fused(self) -> bool:
        return True

    @property
    def probes_fused(self) -> bool:
        return True

    def forward_fused(self, x: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        return self._scan(x, state, None)

    def forward_fused_probed(
        self, x: Tensor, state: rnnlab.State, probe: Tensor
    ) -> tuple[Tensor, rnnlab.State]:
        return self._scan(x, state, probe)

    def _scan(
        self, x: Tensor, state: rnnlab.State, probe: Tensor | None
    ) -> tuple[Tensor, rnnlab.State]:
        raise NotImplementedError


class MinGRUCell(_GatedScan):
    """h_t = (1 - z_t) * h_{t-1} + z_t * g(W_h x_t + b_h), z_t = sigmoid(W_z x_t + b_z).

    minGRU (Feng et al. 2024, "Were RNNs All We Needed?", section 3.1): a GRU whose gate and
    candidate no longer read h_{t-1}, so the recurrence is linear in h and the whole sequence is
    one scan. g(x) = x + 0.5 for x >= 0, sigmoid(x) otherwise: the paper's log-space version,
    whose candidates are positive so that its scan can run on logs. One
    ``nn.Linear(input_size, 2H)`` gives [candidate; gate] pre-activations, torch's default
    initialisation.

    Source: the authors' code (github.com/BorealisAI/minRNNs, ``models/minRNNs.py``, class
    ``minGRU``: ``to_hidden_and_gate``, ``g``/``log_g``, ``associative_scan_log``); checked
    against that file. Its sequential branch is this ``step``; its parallel branch is the fused
    path.

    Fused path: the chunked scan on a_t = 1 - z_t, b_t = z_t g(...) in linear space, not the
    authors' log-space scan (log h_t = a*_t + logcumsumexp(log b - a*), a* = cumsum log(1 - z)):
    the same h_t, 4-5x faster on a CPU (torch's logcumsumexp dominates the log form) and without
    its cancellation of two sums that grow with T (plugins/rnnlab_cells/scan.py has the figures).
    The model is still the log-space version: g keeps every candidate positive.

    Deviations: the authors' module also projects h back to the model width (``to_out``,
    ``expansion_factor``) and may learn an initial state; in rnnlab the model's head and the
    next layer's input projection are that linear map, and the initial state is the model's
    zero state. The fused path adds the initial state h_0 linearly (exp(sum log a) h_0), so
    any h_0, of any sign, is exact; the authors take log h_0 and need h_0 > 0.
    """

    class Params(rnnlab.Params):
        pass

    params: Params
    additive: ClassVar[bool] = True  # interpolates between h_{t-1} and the candidate

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        self.input = nn.Linear(input_size, 2 * hidden_size)  # [W_h; W_z], [b_h; b_z]

    def project_inputs(self, x: Tensor) -> Tensor:
        out: Tensor = self.input(x)
        return out

    def step(self, u_t: Tensor, state: rnnlab.State, t: int) -> tuple[Tensor, rnnlab.State]:
        candidate, gate = u_t.chunk(2, dim=-1)
        z = torch.sigmoid(gate)
        h = state[0]
        h = h + z * (g(candidate) - h)  # (1 - z) h_{t-1} + z g(...)
        return h, (h,)

    def _scan(
        self, x: Tensor, state: rnnlab.State, probe: Tensor | None
    ) -> tuple[Tensor, rnnlab.State]:
        candidate, gate = self.project_inputs(x).chunk(2, dim=-1)
        z = torch.sigmoid(gate)
        b = z * g(candidate)
        out = chunked_scan(1 - z, b if probe is None else b + probe, state[0])
        return out, (out[-1],)

    def input_weight(self) -> Tensor:
        return self.input.weight


class MinLSTMCell(_GatedScan):
    """h_t = f'_t * h_{t-1} + i'_t * g(W_h x_t + b_h), f'_t = f_t / (f_t + i_t), i'_t = i_t /
    (f_t + i_t), f_t = sigmoid(W_f x_t + b_f), i_t = sigmoid(W_i x_t + b_i).

    minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", section 3.2): an LSTM without the
    output gate and the cell/hidden split, whose gates read only x_t; the normalised gates
    f' + i' = 1 make the scale of h independent of time (section 3.2.3), and g is minGRU's
    positive candidate activation (log-space version). With d = softplus(-pre_f) -
    softplus(-pre_i) = log(i / f): f' = sigmoid(-d), i' = sigmoid(d) (the authors' log f' =
    -softplus(d), log i' = -softplus(-d)). One ``nn.Linear(input_size, 3H)`` gives [candidate;
    forget; input] pre-activations, torch's default initialisation.

    Source: the authors' code (github.com/BorealisAI/minRNNs, ``models/minRNNs.py``, class
    ``minLSTM``: ``use_coeff_norm`` is ``normalize``, ``forget_bias_init_scale`` is
    ``forget_bias``); checked against that file.

    Deviations: as minGRU (no ``to_out`` projection or learned initial state inside the cell;
    the fused path is the chunked scan in linear space, on a_t = f'_t, b_t = i'_t g(...)). f' is
    computed as sigmoid(-d), equal to f / (f + i) without the 0/0 of two underflowed sigmoids.
    """

    class Params(rnnlab.Params):
        normalize: bool = Field(
            True,
            description="normalise the gates, f' = f / (f + i), i' = i / (f + i) (the paper's "
            "minLSTM; the authors' use_coeff_norm); false: h_t = f h_{t-1} + i g(...)",
        )
        forget_bias: float = Field(
            0.0,
            description="added to the forget gate's bias at initialisation (the authors' "
            "forget_bias_init_scale)",
        )

    params: Params
    additive: ClassVar[bool] = True  # f h_{t-1} + i candidate carries the state on

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        self.input = nn.Linear(input_size, 3 * hidden_size)  # [W_h; W_f; W_i], [b_h; b_f; b_i]
        if self.params.forget_bias:
            with torch.no_grad():
                self.input.bias[hidden_size : 2 * hidden_size] += self.params.forget_bias

    def project_inputs(self, x: Tensor) -> Tensor:
        out: Tensor = self.input(x)
        return out

    def step(self, u_t: Tensor, state: rnnlab.State, t: int) -> tuple[Tensor, rnnlab.State]:
        candidate, forget, write = u_t.chunk(3, dim=-1)
        f, i = self.gates(forget, write)
        h = f * state[0] + i * g(candidate)
        return h, (h,)

    def gates(self, forget: Tensor, write: Tensor) -> tuple[Tensor, Tensor]:
        """(f', i') from the forget and input pre-activations (f and i unless normalised)."""
        if self.params.normalize:
            d = F.softplus(-forget) - F.softplus(-write)  # log(i / f)
            return torch.sigmoid(-d), torch.sigmoid(d)
        return torch.sigmoid(forget), torch.sigmoid(write)

    def _scan(
        self, x: Tensor, state: rnnlab.State, probe: Tensor | None
    ) -> tuple[Tensor, rnnlab.State]:
        candidate, forget, write = self.project_inputs(x).chunk(3, dim=-1)
        f, i = self.gates(forget, write)
        b = i * g(candidate)
        out = chunked_scan(f, b if probe is None else b + probe, state[0])
        return out, (out[-1],)

    def input_weight(self) -> Tensor:
        return self.input.weight
