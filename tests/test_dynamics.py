"""Lyapunov spectra (rnnlab.run._lyapunov, _jacobians) against what must hold exactly: a
constant Jacobian's eigenvalues, log|det J_t|, the growth of a tiny perturbation, and the
analytic Jacobians of the built-in cells against autograd (issue 19's four checks), plus the
edges of the API."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from rnnlab_cells.indrnn import IndRNNCell
from rnnlab_cells.twins import ElmanCell, GRUCell, LSTMCell
from torch import Tensor, nn

from rnnlab.base import Cell, Params, State
from rnnlab.run import (
    exponents_along,
    jacobian_log_singular_values,
    lyapunov_spectrum,
    step_jacobian,
)

F64 = torch.float64
SINGULAR = (1.6, 1.1, 0.8, 0.5, 0.3, 0.15)  # adjacent ratios <= 0.73: the frame aligns fast


def fixed_point_rnn(values: tuple[float, ...] = SINGULAR, seed: int = 0) -> ElmanCell:
    """A tanh rnn with zero biases and W_hh = Q diag(values) Q^T: on zero input h stays 0,
    where tanh' = 1, so every J_t is W_hh exactly and the exponents are log(values)."""
    torch.manual_seed(seed)
    cell = ElmanCell(2, len(values)).double()
    q = torch.linalg.qr(torch.randn(len(values), len(values), dtype=F64))[0]
    with torch.no_grad():
        cell.weight_hh.copy_(q @ torch.diag(torch.tensor(values, dtype=F64)) @ q.T)
        cell.bias_hh.zero_()
        cell.bias_ih.zero_()
    return cell


def random_rnn(hidden: int, gain: float, seed: int = 0, inputs: int = 2) -> ElmanCell:
    """A tanh rnn with W_hh ~ N(0, gain^2 / H): chaotic for gain > 1 (Sompolinsky et al.)."""
    torch.manual_seed(seed)
    cell = ElmanCell(inputs, hidden).double()
    with torch.no_grad():
        cell.weight_hh.normal_(0.0, gain / math.sqrt(hidden))
    return cell


def drive(steps: int, batch: int, inputs: int = 2, seed: int = 1, scale: float = 1.0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(steps, batch, inputs, generator=generator, dtype=F64)


# --- (1) a constant Jacobian -------------------------------------------------------------------


def test_a_constant_jacobian_gives_the_logs_of_its_eigenvalues() -> None:
    cell = fixed_point_rnn()
    spectrum = lyapunov_spectrum(cell, torch.zeros(130, 3, 2, dtype=F64), warmup=100)
    expected = np.log(sorted(SINGULAR, reverse=True))
    np.testing.assert_allclose(spectrum.exponents, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(spectrum.per_example, np.tile(expected, (3, 1)), atol=1e-5)
    assert spectrum.steps == 30 and spectrum.log_det_mean == pytest.approx(expected.sum())


def test_qr_every_and_warmup_on_a_constant_jacobian() -> None:
    """QR every 4 steps over 30 accumulated steps: 8 windows, the last 2 steps long, each the
    same exponents; the length-weighted mean of the windows is the spectrum."""
    cell = fixed_point_rnn()
    spectrum = lyapunov_spectrum(cell, torch.zeros(130, 2, 2, dtype=F64), qr_every=4, warmup=100)
    expected = np.log(sorted(SINGULAR, reverse=True))
    assert spectrum.steps == 30 and spectrum.ftle.shape == (8, 6)
    np.testing.assert_allclose(spectrum.exponents, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(spectrum.ftle, np.tile(expected, (8, 1)), atol=1e-5, rtol=0)
    lengths = np.array([4] * 7 + [2])
    weighted = (spectrum.ftle * lengths[:, None]).sum(axis=0) / lengths.sum()
    np.testing.assert_allclose(weighted, spectrum.exponents, atol=1e-12)


def test_fewer_exponents_than_the_width_are_the_largest() -> None:
    cell = fixed_point_rnn()
    top = lyapunov_spectrum(cell, torch.zeros(130, 2, 2, dtype=F64), k=3, warmup=100)
    np.testing.assert_allclose(top.exponents, np.log(SINGULAR[:3]), atol=1e-5, rtol=0)
    assert top.per_example.shape == (2, 3) and top.ftle.shape == (30, 3)
    assert top.log_det_mean is None  # only with k = the full width
    driven = random_rnn(8, 2.0)
    x = drive(120, 4)
    full = lyapunov_spectrum(driven, x, warmup=40)
    np.testing.assert_allclose(
        lyapunov_spectrum(driven, x, k=3, warmup=40).exponents, full.exponents[:3], atol=2e-3
    )


def test_a_diagonal_jacobian_with_fewer_exponents_still_finds_the_largest() -> None:
    """IndRNN's J_t is diagonal: coordinate axes never mix, so a first frame of identity columns
    (lyapunov-hyperopt's) would report the first k units; the random frame finds the top k."""
    u = (0.1, 0.2, 0.95, 0.6, 0.3)
    cell = IndRNNCell(2, 5, IndRNNCell.Params(nonlinearity="tanh")).double()
    with torch.no_grad():
        cell.u.copy_(torch.tensor(u))  # zero input, zero bias: h stays 0 and J_t = diag(u)
    top = lyapunov_spectrum(cell, torch.zeros(130, 2, 2, dtype=F64), k=2, warmup=100)
    np.testing.assert_allclose(top.exponents, np.log([0.95, 0.6]), atol=1e-5, rtol=0)


# --- (2) the exponents sum to the mean of log|det J_t| ------------------------------------------


@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_the_full_spectrum_sums_to_the_mean_log_determinant(name: str) -> None:
    torch.manual_seed(3)
    cell = random_rnn(6, 1.5) if name == "rnn" else LSTMCell(2, 5).double()
    spectrum = lyapunov_spectrum(cell, drive(40, 3), warmup=5)
    assert spectrum.exponents.shape == (6 if name == "rnn" else 10,) and spectrum.steps == 35
    assert spectrum.log_det_mean is not None
    assert spectrum.exponents.sum() == pytest.approx(spectrum.log_det_mean, abs=1e-4)
    assert list(spectrum.exponents) == sorted(spectrum.exponents, reverse=True)


# --- (3) the largest exponent is the growth rate of a tiny perturbation ------------------------


def perturbation_growth(cell: Cell, x: Tensor, warmup: int, size: float = 1e-6) -> float:
    """Benettin's method: propagate a perturbation of ``size`` through the same inputs with the
    nonlinear step, renormalise it after every step, average its log growth after ``warmup``."""
    us = cell.project_inputs(x).unbind(0)
    state = cell.init_state(x.shape[1], dtype=x.dtype)
    flat = [s.reshape(s.shape[0], -1) for s in state]
    direction = torch.randn(x.shape[1], sum(f.shape[1] for f in flat), dtype=x.dtype)
    direction = size * direction / direction.norm(dim=1, keepdim=True)
    total = torch.zeros(x.shape[1], dtype=x.dtype)

    def split(v: Tensor) -> State:
        parts = v.split([f.shape[1] for f in flat], dim=1)
        return tuple(p.reshape(s.shape) for p, s in zip(parts, state, strict=True))

    with torch.no_grad():
        for t, u_t in enumerate(us):
            plain = torch.cat([s.reshape(s.shape[0], -1) for s in state], 1)
            other = plain + direction
            state = cell.step(u_t, state, t)[1]
            moved = cell.step(u_t, split(other), t)[1]
            gap = torch.cat([s.reshape(s.shape[0], -1) for s in moved], 1) - torch.cat(
                [s.reshape(s.shape[0], -1) for s in state], 1
            )
            norm = gap.norm(dim=1)
            if t >= warmup:
                total += torch.log(norm / size)
            direction = size * gap / norm[:, None]
    return float(total.mean()) / (len(us) - warmup)


@pytest.mark.parametrize("name", ["chaotic rnn", "contracting rnn", "lstm"])
def test_the_largest_exponent_is_the_growth_rate_of_a_tiny_perturbation(name: str) -> None:
    torch.manual_seed(0)
    cell: Cell
    if name == "lstm":
        lstm = LSTMCell(2, 8).double()
        with torch.no_grad():
            lstm.weight_hh.mul_(4.0)  # a strongly driven LSTM: its largest exponent is not ~0
        cell = lstm
    else:
        cell = random_rnn(16, 2.0 if name == "chaotic rnn" else 0.7)
    x = drive(150, 4)
    lam = lyapunov_spectrum(cell, x, k=2, warmup=30).exponents[0]
    growth = perturbation_growth(cell, x, warmup=30)
    assert abs(lam - growth) <= max(0.1 * abs(growth), 0.05), (lam, growth)
    if name == "chaotic rnn":
        assert lam > 0.05  # the check means something: chaos, not a marginal exponent


# --- (4) analytic Jacobians against autograd ----------------------------------------------------

BUILTIN: list[tuple[str, type[Cell], Params]] = [
    ("rnn-tanh", ElmanCell, ElmanCell.Params()),
    ("rnn-relu", ElmanCell, ElmanCell.Params(nonlinearity="relu")),
    ("lstm", LSTMCell, LSTMCell.Params(forget_bias=1.0)),
    ("gru", GRUCell, GRUCell.Params()),
    ("indrnn-relu", IndRNNCell, IndRNNCell.Params()),
    ("indrnn-tanh", IndRNNCell, IndRNNCell.Params(nonlinearity="tanh", input_std=None)),
]


@pytest.mark.parametrize(("name", "cls", "params"), BUILTIN, ids=[b[0] for b in BUILTIN])
def test_analytic_jacobians_equal_autograd(name: str, cls: type[Cell], params: Params) -> None:
    torch.manual_seed(0)
    cell = cls(3, 5, params).double()
    if isinstance(cell, IndRNNCell):
        with torch.no_grad():
            cell.u.uniform_(-1.0, 1.0)
    x = torch.randn(4, 3, dtype=F64)
    state = tuple(torch.randn_like(s) for s in cell.init_state(4, dtype=F64))
    u_t = cell.project_inputs(x)
    analytic = step_jacobian(cell, u_t, state, 2, method="analytic")
    autograd = step_jacobian(cell, u_t, state, 2, method="autograd")
    width = 10 if name == "lstm" else 5
    assert analytic.shape == (4, width, width)
    torch.testing.assert_close(analytic, autograd, atol=1e-6, rtol=0)
    assert float(analytic.detach().abs().max()) > 0.05  # a real Jacobian, not zeros on both sides


@pytest.mark.parametrize("cls", [ElmanCell, LSTMCell, GRUCell])
def test_normalisers_fall_back_to_autograd_and_restore_the_training_flags(
    cls: type[Cell],
) -> None:
    from rnnlab_remedies.norm import BatchNormRemedy

    torch.manual_seed(0)
    cell = BatchNormRemedy().apply_cell(cls(2, 4), 0).double()
    x = drive(12, 3)
    cell.train()
    u_t = cell.project_inputs(x[0])  # in training: per-step statistics exist after it
    with pytest.raises(ValueError, match="no analytic step_jacobian"):
        step_jacobian(cell, u_t, cell.init_state(3, dtype=F64), 0, method="analytic")
    buffers = {n: b.clone() for n, b in cell.named_buffers()}
    spectrum = lyapunov_spectrum(cell, x, k=3, warmup=2)
    assert np.isfinite(spectrum.exponents).all()
    assert cell.training and all(m.training for m in cell.modules())  # flags restored
    for name, value in cell.named_buffers():  # eval mode: population statistics untouched
        torch.testing.assert_close(value, buffers[name])


# --- any cell: autograd from its own step -------------------------------------------------------


class ThirdPartyTanh(Cell):
    """A third-party cell as a plugin author writes it: ``forward`` only (no ``project_inputs``,
    ``step`` or ``step_jacobian``): an Elman rnn of its own."""

    def __init__(self, input_size: int, hidden_size: int, params: Params | None = None) -> None:
        super().__init__(input_size, hidden_size, params)
        self.ih = nn.Linear(input_size, hidden_size)
        self.hh = nn.Linear(hidden_size, hidden_size)

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        h = torch.tanh(self.ih(x_t) + self.hh(state[0]))
        return h, (h,)


class ThirdPartyLeaky(ThirdPartyTanh):
    """A state of two tensors of different shapes: h and a leaky trace m ``[B, 1, H]`` of it."""

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        h = torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)
        return (h, torch.zeros(batch, 1, self.hidden_size, device=device, dtype=dtype))

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        h = torch.tanh(self.ih(x_t) + self.hh(state[0]) + state[1].squeeze(1))
        return h, (h, 0.5 * state[1] + 0.3 * h.unsqueeze(1))


def test_a_third_party_cell_gets_its_spectrum_by_autograd() -> None:
    torch.manual_seed(0)
    mine = ThirdPartyTanh(2, 6).double()
    twin = ElmanCell(2, 6).double()  # the same map, with the analytic Jacobian
    with torch.no_grad():
        for ours, theirs in ((twin.weight_ih, mine.ih.weight), (twin.bias_ih, mine.ih.bias)):
            ours.copy_(theirs)
        for ours, theirs in ((twin.weight_hh, mine.hh.weight), (twin.bias_hh, mine.hh.bias)):
            ours.copy_(theirs)
    x = drive(40, 3)
    for k in (3, 6):  # pushing the frame's columns, and the whole J
        by_autograd = lyapunov_spectrum(mine, x, k=k, warmup=5).exponents
        analytic = lyapunov_spectrum(twin, x, k=k, warmup=5).exponents
        np.testing.assert_allclose(by_autograd, analytic, atol=1e-10)


def test_a_third_party_state_of_two_tensors() -> None:
    torch.manual_seed(0)
    cell = ThirdPartyLeaky(2, 5).double()
    with torch.no_grad():
        cell.hh.weight.mul_(3.0)
    x = drive(150, 3)
    spectrum = lyapunov_spectrum(cell, x, warmup=30)
    assert spectrum.exponents.shape == (10,) and np.isfinite(spectrum.exponents).all()
    assert spectrum.exponents.sum() == pytest.approx(spectrum.log_det_mean, abs=1e-4)
    growth = perturbation_growth(cell, x, warmup=30)
    assert abs(spectrum.exponents[0] - growth) <= max(0.1 * abs(growth), 0.05)


def test_a_subclass_that_overrides_step_is_not_given_the_stale_formula() -> None:
    class Steeper(ElmanCell):
        def step(self, u_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
            h = torch.tanh(2 * (u_t + nn.functional.linear(state[0], self.weight_hh)))
            return h, (h,)

    torch.manual_seed(0)
    cell = Steeper(2, 4).double()
    state = (torch.randn(3, 4, dtype=F64),)
    u_t = cell.project_inputs(torch.randn(3, 2, dtype=F64))
    auto = step_jacobian(cell, u_t, state, 0)
    torch.testing.assert_close(auto, step_jacobian(cell, u_t, state, 0, method="autograd"))


# --- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "options", "match"),
    [
        ((10, 2, 2), {"k": 7}, r"k: expected 1 <= k <= 6 \(the state's full width\), got 7"),
        ((10, 2, 2), {"k": 0}, "k: expected 1 <= k <= 6"),
        ((10, 2, 2), {"warmup": 10}, r"warmup: expected 0 <= warmup < T=10 .* got 10"),
        ((10, 2, 2), {"qr_every": 0}, "qr_every: expected an integer >= 1, got 0"),
        ((10, 2), {}, r"inputs: expected \[T, B, input_size=2\] .* got shape \[10, 2\]"),
        ((10, 2, 3), {}, r"inputs: expected \[T, B, input_size=2\]"),
    ],
)
def test_bad_arguments_name_the_argument(
    shape: tuple[int, ...], options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        lyapunov_spectrum(fixed_point_rnn(), torch.zeros(shape, dtype=F64), **options)


def test_a_state_of_the_wrong_batch_is_refused() -> None:
    cell = fixed_point_rnn()
    with pytest.raises(ValueError, match=r"state: expected tensors \[B=2, \.\.\.\]"):
        lyapunov_spectrum(cell, torch.zeros(5, 2, 2, dtype=F64), state=cell.init_state(3))


# --- the dynamical-isometry view and the differentiable recursion -------------------------------


def test_log_singular_values_of_the_jacobian_product() -> None:
    cell = fixed_point_rnn()  # J_t = W_hh: the product over 20 steps has singular values s^20
    values = jacobian_log_singular_values(cell, torch.zeros(10, 2, 2, dtype=F64))
    np.testing.assert_allclose(values, np.tile(10 * np.log(SINGULAR), (2, 1)), atol=1e-8)
    # over 20 steps 0.15^20 is 47 nats below 1.6^20: below the resolution, reported at its floor
    # (and 0.3^20, 33.5 nats below, is near it: an SVD's error is that of the largest value)
    values = jacobian_log_singular_values(cell, torch.zeros(20, 2, 2, dtype=F64))
    np.testing.assert_allclose(values[:, :4], np.tile(20 * np.log(SINGULAR[:4]), (2, 1)), atol=1e-6)
    np.testing.assert_allclose(values[:, 4], 20 * math.log(SINGULAR[4]), atol=1e-2)
    floor = 20 * math.log(SINGULAR[0]) + math.log(6 * np.finfo(np.float64).eps)
    np.testing.assert_allclose(values[:, 5], floor, atol=1e-12)
    driven = random_rnn(5, 1.0)  # W_hh orthogonal x 1.2: a product well inside the resolution
    with torch.no_grad():
        driven.weight_hh.copy_(1.2 * torch.linalg.qr(driven.weight_hh)[0])
    x = drive(6, 2)
    state = driven.init_state(2, dtype=F64)
    product = torch.eye(5, dtype=F64).repeat(2, 1, 1)
    with torch.no_grad():
        for t, u_t in enumerate(driven.project_inputs(x).unbind(0)):
            product = step_jacobian(driven, u_t, state, t) @ product
            state = driven.step(u_t, state, t)[1]
    expected = torch.linalg.svdvals(product).log().numpy()
    np.testing.assert_allclose(jacobian_log_singular_values(driven, x), expected, atol=1e-8)


def test_the_differentiable_recursion_matches_and_reaches_the_weights() -> None:
    cell = random_rnn(6, 1.5)
    x = drive(30, 3)
    us = cell.project_inputs(x).unbind(0)
    exponents = exponents_along(cell, us, cell.init_state(3, dtype=F64), k=6, warmup=5)
    measured = lyapunov_spectrum(cell, x, warmup=5).per_example
    np.testing.assert_allclose(-np.sort(-exponents.detach().numpy(), axis=1), measured, atol=1e-10)
    (grad,) = torch.autograd.grad(exponents[:, 0].mean(), cell.weight_hh)
    assert torch.isfinite(grad).all() and float(grad.abs().max()) > 0


def test_through_states_is_the_trajectory_part_of_the_gradient() -> None:
    """Without it each J_t is differentiated at fixed states: the same gradient where the
    trajectory forgets (contracting), a different one where it explodes (chaotic)."""
    for gain, same in ((0.5, True), (3.0, False)):
        cell = random_rnn(16, gain)
        us = cell.project_inputs(drive(40, 4, scale=0.1)).unbind(0)
        grads = []
        for through in (True, False):
            lam = exponents_along(
                cell, us, cell.init_state(4, dtype=F64), k=3, warmup=5, through_states=through
            )
            grads.append(torch.autograd.grad(lam.mean(), cell.weight_hh)[0])
        relative = float((grads[0] - grads[1]).norm() / grads[1].norm())
        assert (relative < 0.05) if same else (relative > 0.5), (gain, relative)
