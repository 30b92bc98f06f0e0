"""The plugin's own tests: one subclass of rnnlab's contract suite per class."""

from __future__ import annotations

import pytest
import torch
from rnnlab_example.mgu import MinimalGatedUnit
from rnnlab_example.regulariser import NormPreserving
from rnnlab_example.temporal_order import TemporalOrder
from torch import Tensor

import rnnlab
from rnnlab.testing import CellContract, DatasetContract, RemedyContract


class TestMinimalGatedUnit(CellContract):
    cell_cls = MinimalGatedUnit


class TestTemporalOrder(DatasetContract):
    dataset_cls = TemporalOrder
    params = TemporalOrder.Params(seq_len=20, val_size=64, test_size=64)


class TestNormPreserving(RemedyContract):
    remedy_cls = NormPreserving


def test_temporal_order_labels_follow_the_relevant_symbols() -> None:
    task = TemporalOrder(TemporalOrder.Params(seq_len=50, val_size=200), seed=3)
    (x, y), *_ = task.batches("val", 200)
    symbols = x.argmax(dim=-1)  # [T, B]
    assert (symbols[0] == 6).all() and (symbols[-1] == 7).all()
    for b in range(200):
        relevant = [int(s) for s in symbols[:, b] if s in (4, 5)]
        assert len(relevant) == 2
        assert int(y[b]) == 2 * (relevant[0] - 4) + (relevant[1] - 4)


class Scaled(rnnlab.Cell):
    """h_{t+1} = scale * h_t + x_t: every step's Jacobian is scale * I."""

    class Params(rnnlab.Params):
        scale: float = 1.0

    params: Params

    def step(self, u_t: Tensor, state: rnnlab.State, t: int) -> tuple[Tensor, rnnlab.State]:
        h = self.params.scale * state[0] + u_t
        return h, (h,)

    def forward(self, x_t: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        return self.step(x_t, state, 0)


def omega_of(cell: rnnlab.Cell, x: Tensor, weight: float = 1.0) -> tuple[Tensor, dict[str, float]]:
    model = rnnlab.SequenceModel([cell], 1, rnnlab.TaskKind.REGRESSION_LAST)
    traces: list[rnnlab.LayerTrace] = []
    out, _ = model(x, traces=traces)
    term = NormPreserving(NormPreserving.Params(weight=weight)).loss_term(out.pow(2).mean(), traces)
    assert term is not None
    return term


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0])
def test_omega_of_a_linear_step_is_its_squared_norm_change(scale: float) -> None:
    term, metrics = omega_of(
        Scaled(4, 4, Scaled.Params(scale=scale)), torch.randn(6, 5, 4).requires_grad_(), 2.0
    )
    assert metrics["norm_preserving/ratio"] == pytest.approx(scale, rel=1e-5)
    assert metrics["norm_preserving/omega"] == pytest.approx((scale - 1) ** 2, abs=1e-6)
    assert float(term) == pytest.approx(2.0 * (scale - 1) ** 2, abs=1e-6)


def test_minimising_omega_moves_the_ratio_towards_one() -> None:
    torch.manual_seed(0)
    cell = MinimalGatedUnit(8, 16)
    x = torch.randn(30, 16, 8)
    optimizer = torch.optim.Adam(cell.parameters(), lr=1e-2)
    history = []
    for _ in range(40):
        term, metrics = omega_of(cell, x)
        optimizer.zero_grad()
        term.backward()
        optimizer.step()
        history.append(metrics["norm_preserving/omega"])
    assert cell.candidate.weight.grad is not None and cell.candidate.weight.grad.abs().sum() > 0
    assert history[-1] < 0.5 * history[0], history
