"""The cells of issue 20 (expRNN, coRNN, UnICORNN, LEM, AntisymmetricRNN, Lipschitz RNN, LRU,
minGRU, minLSTM): the contract suite, each recurrence against a step written out from its paper
and the authors' code, their published defaults and initialisations, the scan of the linear
recurrences against the step-by-step loop, and a real run of each on a tiny adding problem."""

from __future__ import annotations

import copy
import importlib.util
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from rnnlab_cells.linear import LRUCell, MinGRUCell, MinLSTMCell, g
from rnnlab_cells.orthogonal import ExpRNNCell
from rnnlab_cells.oscillators import CoRNNCell, LEMCell, UnICORNNCell
from rnnlab_cells.scan import chunked_scan, doubling_scan
from rnnlab_cells.stable import AntisymmetricCell, LipschitzCell
from rnnlab_remedies.residual import Residual
from torch import Tensor
from torch.nn import functional as F

import rnnlab
from rnnlab.testing import TINY_ADDING, CellContract, installed_registry, short_run

ROOT = Path(__file__).resolve().parents[1]
CELLS: dict[str, type[rnnlab.Cell]] = {
    "exprnn": ExpRNNCell,
    "cornn": CoRNNCell,
    "unicornn": UnICORNNCell,
    "lem": LEMCell,
    "antisymmetric": AntisymmetricCell,
    "lipschitz": LipschitzCell,
    "lru": LRUCell,
    "mingru": MinGRUCell,
    "minlstm": MinLSTMCell,
}
SCANNED = ["lru", "mingru", "minlstm"]

# --- the contract suite ----------------------------------------------------------------------


class TestExpRNN(CellContract):
    cell_cls = ExpRNNCell


class TestExpRNNCayleyMapHenaffInit(CellContract):
    cell_cls = ExpRNNCell
    params = ExpRNNCell.Params(orthogonal_map="cayley", init="henaff")


class TestCoRNN(CellContract):
    cell_cls = CoRNNCell


class TestUnICORNN(CellContract):
    cell_cls = UnICORNNCell


class TestLEM(CellContract):
    cell_cls = LEMCell


class TestAntisymmetric(CellContract):
    cell_cls = AntisymmetricCell


class TestAntisymmetricGated(CellContract):
    cell_cls = AntisymmetricCell
    params = AntisymmetricCell.Params(gated=True)


class TestLipschitz(CellContract):
    cell_cls = LipschitzCell


class TestLRU(CellContract):
    cell_cls = LRUCell
    hidden_size = 6  # N = 3 complex units


class TestLRURing(CellContract):
    cell_cls = LRUCell
    hidden_size = 6
    params = LRUCell.Params(r_min=0.9, r_max=0.999, max_phase=3.14)


class TestMinGRU(CellContract):
    cell_cls = MinGRUCell


class TestMinLSTM(CellContract):
    cell_cls = MinLSTMCell


class TestMinLSTMUnnormalised(CellContract):
    cell_cls = MinLSTMCell
    params = MinLSTMCell.Params(normalize=False, forget_bias=1.0)


# --- helpers ---------------------------------------------------------------------------------


def make(cls: type[rnnlab.Cell], inputs: int = 3, hidden: int = 6, **options: Any) -> Any:
    torch.manual_seed(0)
    return cls(inputs, hidden, cls.Params(**options)).double()


def draw(cell: rnnlab.Cell, batch: int = 4) -> tuple[Tensor, rnnlab.State]:
    """An input step and a random (signed) state of the cell's shape, float64."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(batch, cell.input_size, generator=gen, dtype=torch.float64)
    state = tuple(
        torch.randn(s.shape, generator=gen, dtype=torch.float64)
        for s in cell.init_state(batch, None, torch.float64)
    )
    return x, state


def close(a: Tensor, b: Tensor, tol: float = 1e-10) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def loop(cell: rnnlab.Cell, x: Tensor, state: rnnlab.State) -> Tensor:
    """The model's loop: project every input, then step (``unbind``, as rnnlab's run_loop)."""
    hs = []
    for t, u_t in enumerate(cell.project_inputs(x).unbind(0)):
        h, state = cell.step(u_t, state, t)
        hs.append(h)
    return torch.stack(hs)


def test_every_cell_is_registered_under_its_name() -> None:
    registry = installed_registry()
    for name, cls in CELLS.items():
        assert registry.get("cell", name) is cls, name


# --- each recurrence against its paper, written out --------------------------------------------


def test_exprnn_step_and_orthogonal_b() -> None:
    for orthogonal_map in ("matrix_exp", "cayley"):
        cell = make(ExpRNNCell, orthogonal_map=orthogonal_map)
        x, (h,) = draw(cell)
        X = cell.recurrent.parametrizations.weight.original.detach()
        A = X.tril() - X.tril().T  # torch's parametrization: skew-symmetric
        eye = torch.eye(6, dtype=torch.float64)
        if orthogonal_map == "matrix_exp":
            B = torch.matrix_exp(A)
        else:
            B = torch.linalg.solve(eye - A / 2, eye + A / 2)
        z = x @ cell.input.weight.T + h @ B.T
        expected = torch.sign(z) * F.relu(z.abs() + cell.bias)  # modReLU
        close(cell(x, (h,))[0], expected)
        close(cell.recurrent_weight(), B)
        close(B.T @ B, eye)


@torch.no_grad()  # reading parameters
def test_exprnn_initialisation_is_the_authors() -> None:
    """The code draws A with 2x2 blocks [[0, s], [-s, 0]] and multiplies h B (row vectors);
    rnnlab's B h with B = exp(A^T) is the same initial map. Cayley init: s in [-1, 0]; Henaff:
    s in [-pi, pi]. W Kaiming-normal (ReLU), no bias; the modReLU bias U(-0.01, 0.01)."""
    assert ExpRNNCell.Params() == ExpRNNCell.Params(
        orthogonal_map="matrix_exp", init="cayley", orthogonal_lr_factor=0.1
    )
    for init, low, high in (("cayley", -1.0, 0.0), ("henaff", -math.pi, math.pi)):
        cell = make(ExpRNNCell, inputs=64, hidden=64, init=init)
        X = cell.recurrent.parametrizations.weight.original.detach()
        code = (X.tril() - X.tril().T).T  # the authors' A
        s = code.diagonal(1)[::2]
        assert bool((s >= low).all() and (s <= high).all()) and s.std() > 0
        blocks = torch.zeros_like(code)
        index = torch.arange(0, 64, 2)
        blocks[index, index + 1] = s
        close(code, blocks - blocks.T)  # nothing outside the 2x2 blocks
        close(cell.recurrent_weight().T, torch.matrix_exp(code))  # h B_code == B h
    cell = make(ExpRNNCell, inputs=64, hidden=64)
    assert cell.input.bias is None
    assert abs(float(cell.input.weight.std()) / math.sqrt(2 / 64) - 1) < 0.1
    assert float(cell.bias.abs().max()) <= 0.01


def test_exprnn_b_stays_orthogonal_while_training() -> None:
    torch.manual_seed(0)
    cell = ExpRNNCell(3, 16)
    optimizer = torch.optim.Adam(cell.parameters(), lr=0.05)
    x = torch.randn(20, 8, 3)
    before = cell.recurrent_weight().detach().clone()
    for _ in range(5):
        optimizer.zero_grad()
        loop(cell, x, cell.init_state(8)).square().mean().backward()
        optimizer.step()
    B = cell.recurrent_weight().detach()
    assert float((B - before).abs().max()) > 1e-2, "B did not train"
    assert float(torch.linalg.matrix_norm(B.T @ B - torch.eye(16))) < 1e-5


def test_exprnn_declares_the_orthogonal_parameter_group() -> None:
    cell = make(ExpRNNCell, orthogonal_lr_factor=0.25)
    groups = cell.lr_groups()
    assert list(groups) == list(ExpRNNCell.lr_group_names) == ["orthogonal"]
    factor, params = groups["orthogonal"]
    assert factor == 0.25
    named = {id(p): n for n, p in cell.named_parameters()}
    assert [named[id(p)] for p in params] == ["recurrent.parametrizations.weight.original"]
    (grad,) = torch.autograd.grad(cell.recurrent_weight().sum(), params)  # it is what makes B
    assert bool(grad.any())


def test_exprnn_recomputes_b_for_every_sequence() -> None:
    """B is computed at step 0 and reused by later steps: a sequence after an in-place update
    (an optimizer step) must see the new B, and a copy of a used cell must work."""
    cell = make(ExpRNNCell)
    x = torch.randn(5, 4, 3, dtype=torch.float64)
    loop(cell, x, cell.init_state(4, None, torch.float64))
    with torch.no_grad():
        cell.recurrent.parametrizations.weight.original.add_(0.3)
    fresh = make(ExpRNNCell)
    fresh.load_state_dict(cell.state_dict())
    close(
        loop(cell, x, cell.init_state(4, None, torch.float64)),
        loop(fresh, x, fresh.init_state(4, None, torch.float64)),
    )
    twin = copy.deepcopy(cell)
    close(
        twin(x[0], twin.init_state(4, None, torch.float64))[0],
        cell(x[0], cell.init_state(4, None, torch.float64))[0],
    )


def test_cornn_step_is_the_authors_cell() -> None:
    """The authors' coRNNCell (psMNIST/network.py): one Linear over cat(x, hz, hy)."""
    cell = make(CoRNNCell)
    x, (y, z) = draw(cell)
    i2h = torch.cat([cell.input.weight, cell.w_z.weight, cell.w_y.weight], 1)
    dt, gamma, eps = 0.076, 0.4, 8.0
    hz = z + dt * (
        torch.tanh(torch.cat([x, z, y], 1) @ i2h.T + cell.input.bias) - gamma * y - eps * z
    )
    hy = y + dt * hz
    h, (y1, z1) = cell(x, (y, z))
    close(h, hy)
    close(y1, hy)
    close(z1, hz)


@torch.no_grad()  # reading parameters
def test_cornn_defaults_and_init() -> None:
    assert CoRNNCell.Params() == CoRNNCell.Params(dt=0.076, gamma=0.4, epsilon=8.0)
    cell = make(CoRNNCell, inputs=10, hidden=40)
    bound = 1 / math.sqrt(10 + 2 * 40)  # nn.Linear(n_inp + 2 n_hid, n_hid)'s default
    for name, p in cell.named_parameters():
        assert bound * 0.8 < float(p.abs().max()) <= bound, name


def test_unicornn_step_is_the_authors_kernel() -> None:
    """unicornn_fwd: hz -= dt sigmoid(c) (tanh(hy w + x) + alpha hy); hy += dt sigmoid(c) hz."""
    cell = make(UnICORNNCell)
    x, (y, z) = draw(cell)
    dt, alpha = 0.19, 30.65
    step = dt * torch.sigmoid(cell.c)
    u = x @ cell.input.weight.T + cell.input.bias
    hz = z - step * (torch.tanh(y * cell.w + u) + alpha * y)
    hy = y + step * hz
    h, (y1, z1) = cell(x, (y, z))
    close(h, hy)
    close(z1, hz)


@torch.no_grad()  # reading parameters
def test_unicornn_defaults_and_init() -> None:
    assert UnICORNNCell.Params() == UnICORNNCell.Params(dt=0.19, alpha=30.65)
    cell = make(UnICORNNCell, inputs=50, hidden=200)
    assert 0 <= float(cell.w.min()) < 0.05 and 0.95 < float(cell.w.max()) <= 1
    assert -0.1 <= float(cell.c.min()) < -0.09 and 0.09 < float(cell.c.max()) <= 0.1
    assert not cell.input.bias.any()
    bound = math.sqrt(2 / (1 + 8**2)) * math.sqrt(3 / 50)  # kaiming_uniform_(a=8, fan_in)
    assert bound * 0.9 < float(cell.input.weight.abs().max()) <= bound


def test_lem_step_is_the_authors_cell() -> None:
    """LEMCell.forward of src/sMNIST/network.py, transcribed."""
    cell = make(LEMCell)
    x, (y, z) = draw(cell)
    i_dt1, i_dt2, i_z, i_y = cell.inp2hid(x).chunk(4, 1)
    h_dt1, h_dt2, h_y = cell.hid2hid(y).chunk(3, 1)
    ms_dt_bar = 0.21 * torch.sigmoid(i_dt1 + h_dt1)
    ms_dt = 0.21 * torch.sigmoid(i_dt2 + h_dt2)
    z2 = (1.0 - ms_dt) * z + ms_dt * torch.tanh(i_y + h_y)
    y2 = (1.0 - ms_dt_bar) * y + ms_dt_bar * torch.tanh(cell.transform_z(z2) + i_z)
    h, (y1, z1) = cell(x, (y, z))
    close(h, y2)
    close(z1, z2)


@torch.no_grad()  # reading parameters
def test_lem_defaults_and_init() -> None:
    assert LEMCell.Params() == LEMCell.Params(dt=0.21)
    cell = make(LEMCell, inputs=5, hidden=64)
    for name, p in cell.named_parameters():  # every weight and bias U(-1/sqrt(n), 1/sqrt(n))
        assert 0.9 / 8 < float(p.abs().max()) <= 1 / 8, name


@pytest.mark.parametrize("gated", [False, True])
def test_antisymmetric_step(gated: bool) -> None:
    cell = make(AntisymmetricCell, gated=gated)
    x, (h,) = draw(cell)
    eps, gamma = 0.01, 0.01
    M = cell.w - cell.w.T - gamma * torch.eye(6, dtype=torch.float64)
    u = x @ cell.input.weight.T + cell.input.bias
    if gated:
        u_h, u_z = u.chunk(2, 1)
        expected = h + eps * torch.sigmoid(h @ M.T + u_z) * torch.tanh(h @ M.T + u_h)
    else:
        expected = h + eps * torch.tanh(h @ M.T + u)
    close(cell(x, (h,))[0], expected)
    close(cell.recurrent_weight(), M)
    eigenvalues = torch.linalg.eigvals(cell.recurrent_weight())
    close(eigenvalues.real, torch.full((6,), -gamma, dtype=torch.float64))  # on the axis - gamma


@torch.no_grad()  # reading parameters
def test_antisymmetric_defaults_and_init() -> None:
    assert AntisymmetricCell.Params() == AntisymmetricCell.Params(
        eps=0.01, gamma=0.01, gated=False, sigma_w=1.0
    )
    cell = make(AntisymmetricCell, inputs=100, hidden=100, sigma_w=2.0)
    assert abs(float(cell.input.weight.std()) * 10 - 1) < 0.05  # N(0, 1/m)
    assert abs(float(cell.w.std()) * 10 / 2 - 1) < 0.05  # N(0, sigma_w^2 / n)
    assert not cell.input.bias.any()


def test_lipschitz_step() -> None:
    cell = make(LipschitzCell)
    x, (h,) = draw(cell)
    eps, beta, gamma = 0.03, 0.75, 0.001
    eye = torch.eye(6, dtype=torch.float64)

    def mix(m: Tensor) -> Tensor:
        return (1 - beta) * (m + m.T) + beta * (m - m.T) - gamma * eye

    A, W = mix(cell.m_a), mix(cell.m_w)
    u = x @ cell.input.weight.T + cell.input.bias
    expected = h + eps * (h @ A.T + torch.tanh(h @ W.T + u))
    close(cell(x, (h,))[0], expected)
    close(cell.recurrent_weight(), A)


@torch.no_grad()  # reading parameters
def test_lipschitz_defaults_and_init() -> None:
    assert LipschitzCell.Params() == LipschitzCell.Params(
        eps=0.03, beta=0.75, gamma=0.001, init_std=0.1
    )
    cell = make(LipschitzCell, hidden=128)
    for m in (cell.m_a, cell.m_w):  # gaussian_init_: N(0, std = init_std / n)
        assert abs(float(m.std()) * 128 / 0.1 - 1) < 0.05


def test_lru_step_in_complex_arithmetic() -> None:
    cell = make(LRUCell)
    x, (h,) = draw(cell)
    state = torch.complex(h[:, :3], h[:, 3:])
    lam = torch.exp(torch.complex(-torch.exp(cell.nu_log), torch.exp(cell.theta_log)))
    B = torch.complex(cell.B[:3], cell.B[3:])
    new = lam * state + torch.exp(cell.gamma_log) * (x.to(B.dtype) @ B.T)
    close(cell(x, (h,))[0], torch.cat([new.real, new.imag], 1))
    radius = torch.linalg.eigvals(cell.recurrent_weight()).abs().max()
    close(radius, lam.abs().max())


@torch.no_grad()  # reading parameters
def test_lru_defaults_and_ring_init() -> None:
    assert LRUCell.Params() == LRUCell.Params(r_min=0.0, r_max=1.0, max_phase=6.28)
    cell = make(LRUCell, inputs=40, hidden=4000, r_min=0.5, r_max=0.9, max_phase=3.0)
    modulus = torch.exp(-torch.exp(cell.nu_log))
    phase = torch.exp(cell.theta_log)
    assert 0.5 <= float(modulus.min()) < 0.52 and 0.88 < float(modulus.max()) <= 0.9
    assert 0 <= float(phase.min()) < 0.1 and 2.9 < float(phase.max()) <= 3.0
    close(torch.exp(cell.gamma_log), torch.sqrt(1 - modulus**2), 1e-6)  # normalisation
    mean2 = float((modulus**2).mean())  # |lambda|^2 uniform on [0.25, 0.81] (not |lambda|:
    assert abs(mean2 - (0.25 + 0.81) / 2) < 0.012  # that would give 0.503, 7 sigma away)
    assert abs(float(cell.B.std()) * math.sqrt(2 * 40) - 1) < 0.05  # N(0, 1 / (2 input))
    with pytest.raises(ValueError, match="hidden_size must be even"):
        LRUCell(3, 5)
    with pytest.raises(ValueError, match="must be below r_max"):
        LRUCell.Params(r_min=0.9, r_max=0.5)


def test_mingru_step_and_g() -> None:
    values = torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.5])
    close(
        g(values),
        torch.tensor(
            [torch.sigmoid(torch.tensor(-3.0)), torch.sigmoid(torch.tensor(-1.0)), 0.5, 1.5, 3.0]
        ),
        1e-6,
    )
    cell = make(MinGRUCell)
    x, (h,) = draw(cell)
    w_h, w_z = cell.input.weight.chunk(2, 0)
    b_h, b_z = cell.input.bias.chunk(2)
    z = torch.sigmoid(x @ w_z.T + b_z)
    candidate = x @ w_h.T + b_h
    candidate = torch.where(candidate >= 0, candidate + 0.5, torch.sigmoid(candidate))
    close(cell(x, (h,))[0], (1 - z) * h + z * candidate)
    assert MinGRUCell.Params().model_dump() == {}


@pytest.mark.parametrize("normalize", [True, False])
def test_minlstm_step(normalize: bool) -> None:
    cell = make(MinLSTMCell, normalize=normalize)
    x, (h,) = draw(cell)
    w_h, w_f, w_i = cell.input.weight.chunk(3, 0)
    b_h, b_f, b_i = cell.input.bias.chunk(3)
    f = torch.sigmoid(x @ w_f.T + b_f)
    i = torch.sigmoid(x @ w_i.T + b_i)
    if normalize:
        f, i = f / (f + i), i / (f + i)
    candidate = x @ w_h.T + b_h
    candidate = torch.where(candidate >= 0, candidate + 0.5, torch.sigmoid(candidate))
    close(cell(x, (h,))[0], f * h + i * candidate)


@torch.no_grad()  # reading parameters
def test_minlstm_defaults_and_forget_bias() -> None:
    assert MinLSTMCell.Params() == MinLSTMCell.Params(normalize=True, forget_bias=0.0)
    plain, biased = make(MinLSTMCell), make(MinLSTMCell, forget_bias=2.0)
    shift = biased.input.bias - plain.input.bias
    expected = torch.tensor([0.0] * 6 + [2.0] * 6 + [0.0] * 6, dtype=torch.float64)
    close(shift, expected, 1e-6)  # added in float32


def test_additive_cells_refuse_residual_through_time() -> None:
    """Every update here but expRNN's carries the previous state (a sum or an interpolation):
    residual through time would count it twice."""
    for name, cls in CELLS.items():
        assert cls.additive is (name != "exprnn"), name
        reason = Residual.check(Residual.Params(), name, cls, [], 1, None)  # type: ignore[arg-type]
        assert (reason is not None and "additive" in reason) is cls.additive, (name, reason)


# --- the scan against the loop ---------------------------------------------------------------


def sequential(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    hs, h = [], h0
    for a_t, b_t in zip(a.expand_as(b).unbind(0), b.unbind(0), strict=True):
        h = a_t * h + b_t
        hs.append(h)
    return torch.stack(hs)


@pytest.mark.parametrize("steps", [1, 5, 16, 37, 64])
def test_scans_equal_the_sequential_recurrence(steps: int) -> None:
    gen = torch.Generator().manual_seed(steps)
    a = torch.rand(steps, 3, 4, generator=gen, dtype=torch.float64)
    b = torch.randn(steps, 3, 4, generator=gen, dtype=torch.float64)
    h0 = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    expected = sequential(a, b, h0)
    close(doubling_scan(a, b, h0), expected)
    for chunk in (1, 4, 16):
        close(chunked_scan(a, b, h0, chunk), expected)
    lam = torch.complex(
        torch.rand(1, 1, 4, generator=gen, dtype=torch.float64),
        torch.rand(1, 1, 4, generator=gen, dtype=torch.float64),
    )
    bc = torch.complex(b, torch.randn(b.shape, generator=gen, dtype=torch.float64))
    close(chunked_scan(lam, bc, h0.to(bc.dtype), 4), sequential(lam, bc, h0.to(bc.dtype)))


def test_chunked_scan_gradients_are_exact() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(11, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(11, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, h: chunked_scan(a, b, h, 4), (a, b, h0))


def scanned_cell(name: str) -> rnnlab.Cell:
    torch.manual_seed(0)
    if name == "lru":  # near the unit circle, where a long sequence is hardest
        return LRUCell(3, 16, LRUCell.Params(r_min=0.9, r_max=0.999))
    return CELLS[name](3, 16)


@pytest.mark.parametrize("steps", [200, 2000])
@pytest.mark.parametrize("name", SCANNED)
def test_fused_scan_equals_the_loop(name: str, steps: int) -> None:
    """Outputs and every parameter's gradient, float32, to 1e-4 (relative to the largest)."""
    cell = scanned_cell(name)
    x = torch.randn(steps, 4, 3, generator=torch.Generator().manual_seed(1))
    start = cell.init_state(4)
    params = list(cell.parameters())
    looped = loop(cell, x, start)
    fused, last = cell.forward_fused(x, start)
    assert torch.equal(last[0], fused[-1])
    readout = torch.randn(looped.shape, generator=torch.Generator().manual_seed(2))
    for a, b in zip(
        [looped, *torch.autograd.grad((looped * readout).sum(), params)],
        [fused, *torch.autograd.grad((fused * readout).sum(), params)],
        strict=True,
    ):
        scale = float(a.detach().abs().max())
        assert float((a - b).detach().abs().max()) <= 1e-4 * scale, (name, steps)


@pytest.mark.parametrize("name", SCANNED)
def test_fused_scan_is_stable_at_5000_steps(name: str) -> None:
    """Finite outputs and gradients, and h_t within the bound of its recurrence: minGRU and
    minLSTM interpolate, so |h_t| <= max |g|; the LRU's |x_t| <= max |B u| / (1 - |lambda|)."""
    cell = scanned_cell(name)
    x = torch.randn(5000, 2, 3, generator=torch.Generator().manual_seed(3))
    out, _ = cell.forward_fused(x, cell.init_state(2))
    grads = torch.autograd.grad(out.square().mean(), list(cell.parameters()))
    assert bool(torch.isfinite(out).all()) and all(bool(torch.isfinite(g).all()) for g in grads)
    with torch.no_grad():
        u = cell.project_inputs(x)
        if name == "lru":
            assert isinstance(cell, LRUCell)
            drive = torch.complex(*u.chunk(2, dim=-1)).abs().max()
            modulus = torch.exp(-torch.exp(cell.nu_log)).max()
            bound = float(drive / (1 - modulus))
            states = torch.complex(*out.chunk(2, dim=-1)).abs()
        else:
            bound = float(g(u[..., : cell.hidden_size]).max())
            states = out.abs()
    assert 0 < float(states.max()) <= bound * (1 + 1e-4)


# --- a real run of each ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CELLS))
def test_trains_on_a_tiny_adding_task(name: str) -> None:
    """rnnlab.train through the installed registry, by the cell's name: the run completes and
    records a gradient-flow curve of T = 10 points (short_run checks that it is finite and
    that ||dL/dh_T|| > 0), and at step 0 the gradient reaches the first step."""
    _, tracker = short_run(
        installed_registry(), {"name": "adding", **TINY_ADDING}, {"name": name, "hidden_size": 8}
    )
    flow = getattr(tracker, "flow", None)
    assert flow is not None and flow.shape[-1] == TINY_ADDING["seq_len"]
    assert flow[0, 0, 0] > 0, f"{name}: dL/dh_1 = 0 at step 0: h_1 does not reach the loss"


# --- docs/cells.md ---------------------------------------------------------------------------


def test_docs_cells_md_is_generated_from_the_classes() -> None:
    spec = importlib.util.spec_from_file_location("make_cells", ROOT / "docs" / "make_cells.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render()
    for name in ("rnn", "lstm", "indrnn", *CELLS):
        assert f"## `{name}`" in expected, name
    assert (ROOT / "docs" / "cells.md").read_text(encoding="utf-8") == expected, (
        "docs/cells.md is out of date: run python docs/make_cells.py"
    )
