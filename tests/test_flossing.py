"""Gradient flossing (rnnlab_remedies/flossing.py): its loss term alone, and its preflossing
through Remedy.before_training, move the largest Lyapunov exponent toward 0 from both sides;
interflossing keeps its schedule; it passes the remedy contract."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from rnnlab_cells.twins import ElmanCell
from rnnlab_remedies.flossing import GradientFlossing
from torch import Tensor

from rnnlab import lyapunov_spectrum
from rnnlab._names import TARGET_LOG10_RATIO
from rnnlab.base import LayerTrace, TaskKind
from rnnlab.run import NullTracker, SequenceModel, build_model, load_run_config, train
from rnnlab.testing import RemedyContract


class TestFlossing(RemedyContract):
    remedy_cls = GradientFlossing


class TestFlossingOnLSTM(RemedyContract):
    remedy_cls = GradientFlossing
    params = GradientFlossing.Params(k=3, steps=5, warmup=2)
    cell_name = "lstm"


def chaotic_or_contracting(
    gain: float, hidden: int, **options: Any
) -> tuple[GradientFlossing, SequenceModel, ElmanCell]:
    """A tanh rnn with W_hh ~ N(0, gain^2 / H) and zero biases, with flossing (k 4, 40 steps)."""
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
    return remedy, model, cell


HELD_OUT = 0.1 * torch.randn(150, 8, 2, generator=torch.Generator().manual_seed(2))


def lambda_max(cell: ElmanCell) -> float:
    """rnnlab's measurement, on weakly driven held-out sequences."""
    return float(lyapunov_spectrum(cell, HELD_OUT, k=2, warmup=50).exponents[0])


def flossed(gain: float, hidden: int, steps: int, **options: Any) -> tuple[float, float]:
    """lambda_max before and after ``steps`` Adam steps (lr 1e-2) on the flossing term alone,
    on weakly driven sequences."""
    remedy, model, cell = chaotic_or_contracting(gain, hidden, **options)
    generator = torch.Generator().manual_seed(1)
    before = lambda_max(cell)
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
    return before, lambda_max(cell)


def training_batches(generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    while True:
        yield 0.1 * torch.randn(60, 8, 2, generator=generator), torch.zeros(8, 1)


def preflossed(gain: float, hidden: int, steps: int, **options: Any) -> tuple[float, float]:
    """lambda_max before and after preflossing: ``Remedy.before_training`` with ``pre_steps``
    = steps (Adam at lr 1e-2), the term's weight 0, as rnnlab's training loop calls it."""
    options = {"weight": 0.0, "lr": 1e-2, "pre_steps": steps, **options}
    remedy, model, cell = chaotic_or_contracting(gain, hidden, **options)
    assert not remedy.needs_states  # weight 0: training keeps the fused path
    before = lambda_max(cell)
    metrics = remedy.before_training(model, training_batches(torch.Generator().manual_seed(1)))
    assert metrics[remedy.EXTRA_STEPS] == steps
    assert metrics["flossing/pre_loss"] < metrics["flossing/pre_loss_first"], metrics
    return before, lambda_max(cell)


def test_preflossing_calms_a_chaotic_rnn() -> None:
    before, after = preflossed(gain=2.0, hidden=64, steps=10)
    assert before > 0.08, before
    assert abs(after) < 0.75 * before, (before, after)


def test_preflossing_lifts_a_contracting_rnn() -> None:
    before, after = preflossed(gain=0.5, hidden=16, steps=10)
    assert before < -0.3, before
    assert before + 0.2 < after < 0.1, (before, after)


def test_interflossing_keeps_its_schedule() -> None:
    """every 3 training steps, 2 steps each, at most 2 phases; nothing moves in between."""
    remedy, model, cell = chaotic_or_contracting(
        0.5, 8, weight=0.0, lr=1e-2, pre_steps=0, every=3, inter_steps=2, inter_phases=2
    )
    batches = training_batches(torch.Generator().manual_seed(1))
    assert remedy.before_training(model, batches) == {}
    took = {}
    for done in range(1, 12):
        weights = cell.weight_hh.detach().clone()
        metrics = remedy.between_steps(done, model, batches)
        moved = not torch.equal(weights, cell.weight_hh)
        assert moved == bool(metrics), done
        if metrics:
            took[done] = metrics[remedy.EXTRA_STEPS]
            assert {"flossing/inter_loss", "flossing/inter_lambda_max"} <= set(metrics)
    assert took == {3: 2.0, 6: 2.0}


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


def test_the_options_are_checked() -> None:
    assert GradientFlossing.Params().pre_steps == 50  # Engelken's Ep (README until June 2023)
    assert GradientFlossing.Params().every == 0
    with pytest.raises(ValidationError, match=r"every \(5\) asks .* set inter_steps"):
        GradientFlossing.Params(every=5, pre_steps=0)
    assert GradientFlossing.Params(every=5, pre_steps=0, inter_steps=3).inter_steps == 3
    with pytest.raises(ValidationError, match=r"warmup \(50\) must be less than steps \(50\)"):
        GradientFlossing.Params(warmup=50)


def test_a_weight_of_zero_adds_no_term() -> None:
    remedy = GradientFlossing(GradientFlossing.Params(weight=0.0))
    assert remedy.loss_term(torch.zeros(()), [LayerTrace(ElmanCell(2, 3))]) is None


def test_preflossing_and_interflossing_in_a_training_run(write_config, registry) -> None:
    """Through rnnlab's training loop: the phases are logged at step 0 and at the steps of
    interflossing, with the running total of the extra steps."""
    text = """\
    name: floss
    seed: 0
    dataset: {name: adding, seq_len: 12, val_size: 32}
    cell: {name: rnn, hidden_size: 8}
    remedies: [{name: flossing, weight: 0.0, pre_steps: 3, every: 2, inter_steps: 1, k: 2,
                steps: 8, warmup: 2}]
    train: {steps: 6, batch_size: 8, lr: 0.01, eval_every: 3, probe_every: 0, log_every: 1,
            device: cpu}
    """
    tracker = NullTracker(keep_artifacts=False)
    result = train(load_run_config(write_config(text), registry), tracker)
    assert result.outcome == "completed", result.message
    assert [s for s, _ in tracker.history["flossing/pre_loss"]] == [0]
    assert [s for s, _ in tracker.history["flossing/inter_loss"]] == [2, 4]  # inter_phases 2
    assert tracker.history["train/extra_steps"] == [(0, 3.0), (2, 4.0), (4, 5.0)]
    assert "flossing/loss" not in tracker.history  # weight 0: no term in the training loss


def test_the_step_0_probe_sees_the_preflossed_weights(write_config, registry) -> None:
    """The replication's mechanism at test size: the same seed with and without preflossing
    starts from the same weights; the gradient probe at step 0 comes after preflossing, and its
    log10 ||dL/dh_1|| / ||dL/dh_T|| is far less negative."""
    text = """\
    name: probe
    seed: 0
    dataset: {name: adding, seq_len: 40, val_size: 32}
    cell: {name: rnn, hidden_size: 32}
    remedies: [%s]
    train: {steps: 1, batch_size: 16, lr: 0.01, eval_every: 1, probe_every: 1, log_every: 1,
            device: cpu}
    """
    floss = "{name: flossing, weight: 0.0, pre_steps: 30, lr: 0.01, k: 4, steps: 30, warmup: 3}"
    ratios = {}
    for remedy in ("", floss):
        tracker = NullTracker(keep_artifacts=False)
        result = train(load_run_config(write_config(text % remedy), registry), tracker)
        assert result.outcome == "completed", result.message
        ((step, ratio),) = tracker.history[TARGET_LOG10_RATIO]
        assert step == 0
        ratios[bool(remedy)] = ratio
    assert ratios[False] < -3, ratios  # torch's initialisation contracts: the gradient vanishes
    assert ratios[True] > ratios[False] + 2, ratios
