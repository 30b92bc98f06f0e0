"""Gradient flossing (rnnlab_remedies/flossing.py): its loss term alone moves the largest
Lyapunov exponent toward 0 from both sides, and it passes the remedy contract."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from rnnlab_cells.twins import ElmanCell
from rnnlab_remedies.flossing import GradientFlossing

from rnnlab import lyapunov_spectrum
from rnnlab.base import LayerTrace, TaskKind
from rnnlab.run import build_model
from rnnlab.testing import RemedyContract


class TestFlossing(RemedyContract):
    remedy_cls = GradientFlossing


class TestFlossingOnLSTM(RemedyContract):
    remedy_cls = GradientFlossing
    params = GradientFlossing.Params(k=3, steps=5, warmup=2)
    cell_name = "lstm"


def flossed(gain: float, hidden: int, steps: int, **options: Any) -> tuple[float, float]:
    """lambda_max of a tanh rnn with W_hh ~ N(0, gain^2 / H) and zero biases, before and after
    ``steps`` Adam steps (lr 1e-2) on the flossing term alone, on weakly driven sequences."""
    torch.manual_seed(0)
    remedy = GradientFlossing(GradientFlossing.Params(k=4, steps=40, **options))
    model = build_model(
        ElmanCell,
        ElmanCell.Params(),
        input_size=2,
        hidden_size=hidden,
        layers=1,
        output_size=1,
        kind=TaskKind.REGRESSION_LAST,
        remedies=[remedy],
    )
    cell = model.layers()[0]
    assert isinstance(cell, ElmanCell)
    with torch.no_grad():
        cell.weight_hh.normal_(0.0, gain / math.sqrt(hidden))
        cell.bias_hh.zero_()
        cell.bias_ih.zero_()
    generator = torch.Generator().manual_seed(1)
    held_out = 0.1 * torch.randn(150, 8, 2, generator=generator)

    def lambda_max() -> float:
        return float(lyapunov_spectrum(cell, held_out, k=2, warmup=50).exponents[0])

    before = lambda_max()
    optimizer = torch.optim.Adam(cell.parameters(), lr=1e-2)
    for _ in range(steps):
        traces: list[LayerTrace] = []
        out, _ = model(0.1 * torch.randn(60, 8, 2, generator=generator), traces=traces)
        found = remedy.loss_term(out.square().mean(), traces)
        assert found is not None
        term, metrics = found
        assert set(metrics) == {"flossing/lambda_max", "flossing/loss"}
        optimizer.zero_grad(set_to_none=True)
        term.backward()
        optimizer.step()
    return before, lambda_max()


@pytest.mark.parametrize("through_states", [True, False])
def test_flossing_calms_a_chaotic_rnn(through_states: bool) -> None:
    before, after = flossed(gain=2.0, hidden=64, steps=10, through_states=through_states)
    assert before > 0.08, before  # chaotic to begin with (a small net at gain 2 barely is)
    assert abs(after) < 0.75 * before, (before, after)


@pytest.mark.parametrize("through_states", [True, False])
def test_flossing_lifts_a_contracting_rnn(through_states: bool) -> None:
    before, after = flossed(gain=0.5, hidden=16, steps=10, through_states=through_states)
    assert before < -0.3, before
    assert before + 0.2 < after < 0.1, (before, after)


def test_the_exponents_go_to_the_target() -> None:
    before, after = flossed(gain=0.5, hidden=16, steps=10, target=-0.3)
    assert before < after < -0.1, (before, after)  # up toward -0.3, not on to 0


def test_the_phases_that_need_a_training_seam_are_refused_for_now() -> None:
    for option in ("pre_steps", "every"):
        with pytest.raises(ValidationError, match="needs a seam"):
            GradientFlossing.Params(**{option: 5})
    with pytest.raises(ValidationError, match=r"warmup \(50\) must be less than steps \(50\)"):
        GradientFlossing.Params(warmup=50)


def test_a_weight_of_zero_adds_no_term() -> None:
    remedy = GradientFlossing(GradientFlossing.Params(weight=0.0))
    assert remedy.loss_term(torch.zeros(()), [LayerTrace(ElmanCell(2, 3))]) is None
