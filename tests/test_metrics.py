"""The gradient and weight metrics of a run, value by value: ``grad/global_norm`` against
``torch.nn.utils.get_total_norm``, ``grad/param/<name>``, ``weights/spectral_norm`` and
``weights/spectral_radius``, and each built-in cell's ``recurrent_weight()`` itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
import torch
from rnnlab_cells.simple import SimpleRNN
from rnnlab_cells.twins import ElmanCell, GRUCell, LSTMCell
from torch import Tensor, nn

import rnnlab
from rnnlab.run import NullTracker, SequenceModel, Source, resolve, train
from rnnlab.testing import TINY_TRAIN, registry_with

STEPS = 4


class Recorder(rnnlab.Remedy):
    """Keeps the model, and at every step the gradients ``after_backward`` is handed."""

    models: ClassVar[list[SequenceModel]] = []
    seen: ClassVar[list[dict[str, Any]]] = []

    def apply_model(self, model: SequenceModel) -> None:
        Recorder.models.append(model)

    def after_backward(self, parameters: Sequence[Tensor], grad_norm: float) -> dict[str, float]:
        grads = [p.grad for p in parameters if p.grad is not None]
        names = [n for n, _ in Recorder.models[-1].named_parameters()]
        Recorder.seen.append(
            {
                "argument": grad_norm,
                "total": float(torch.nn.utils.get_total_norm(grads)),
                "params": {
                    n: float(p.grad.norm())
                    for n, p in zip(names, parameters, strict=True)
                    if p.grad is not None
                },
            }
        )
        return {}


class NonNormal(rnnlab.Cell):
    """h_t = tanh(W h_{t-1} + V x_t) with W = [[0.5, 2], [0, -0.3]] (+ 0.1 I beyond): spectral
    radius 0.5, spectral norm ~2.1, which only a radius computed from eigenvalues tells apart."""

    def __init__(self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None):
        super().__init__(input_size, hidden_size, params)
        weight = 0.1 * torch.eye(hidden_size)
        weight[:2, :2] = torch.tensor([[0.5, 2.0], [0.0, -0.3]])
        self.weight = nn.Parameter(weight)
        self.input = nn.Linear(input_size, hidden_size)

    def recurrent_weight(self) -> Tensor:
        return self.weight

    def forward(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        h = torch.tanh(state[0] @ self.weight.T + self.input(x_t))
        return h, (h,)


def run_recorded(cell: dict[str, Any], registry: Any, **train_options: Any) -> NullTracker:
    Recorder.models.clear()
    Recorder.seen.clear()
    data = {
        "dataset": {"name": "adding", "seq_len": 8, "val_size": 32},
        "cell": cell,
        "model": {"layers": 2},
        "remedies": ["recorder"],
        "train": {
            **TINY_TRAIN,
            "steps": STEPS,
            "probe_every": 1,
            "eval_every": 2,
            "plots": False,
            **train_options,
        },
    }
    tracker = NullTracker(keep_artifacts=False)
    result = train(resolve(Source(path=None, data=data), registry), tracker)
    assert result.outcome == "completed", result.message
    return tracker


def test_global_norm_is_torchs_total_norm_and_params_their_own() -> None:
    registry = registry_with("remedy", Recorder, name="recorder")
    tracker = run_recorded({"name": "lstm", "hidden_size": 6}, registry)
    logged = [v for _, v in tracker.history["grad/global_norm"]]  # log_every 1: one per step
    assert len(logged) == len(Recorder.seen) == STEPS
    for value, seen in zip(logged, Recorder.seen, strict=True):
        assert value == pytest.approx(seen["total"], rel=1e-5)
        assert seen["argument"] == pytest.approx(seen["total"], rel=1e-5)
    names = Recorder.seen[0]["params"]
    assert "cells.1.rnn.weight_hh_l0" in names and "head.bias" in names
    for name in names:
        values = [v for _, v in tracker.history[f"grad/param/{name}"]]
        expected = [seen["params"][name] for seen in Recorder.seen]
        assert values == pytest.approx(expected, rel=1e-5), name


def test_spectral_norm_and_radius_of_the_recurrent_weight() -> None:
    registry = registry_with("cell", NonNormal, also=[("remedy", "recorder", Recorder)])
    tracker = run_recorded({"name": "under-test", "hidden_size": 4}, registry, lr=1e-3)
    history = {k: dict(tracker.history[k]) for k in tracker.history if k.startswith("weights/")}
    for key in ("weights/spectral_radius", "weights/spectral_norm"):
        assert sorted(history[key]) == sorted(history[f"{key}/layer0"]) == [0, 2, STEPS], key
    start = NonNormal(1, 4).weight.detach()
    assert history["weights/spectral_radius"][0] == pytest.approx(0.5, abs=1e-5)
    norm = float(torch.linalg.matrix_norm(start, ord=2))
    assert norm > 2 and history["weights/spectral_norm"][0] == pytest.approx(norm, rel=1e-5)
    (model,) = Recorder.models  # after the last step: the last evaluation's weights
    for layer, key in enumerate(("/layer0", "")):
        weight = model.layers()[layer].recurrent_weight().detach()
        radius = float(torch.linalg.eigvals(weight).abs().max())
        assert history[f"weights/spectral_radius{key}"][STEPS] == pytest.approx(radius, rel=1e-4)
        assert history[f"weights/spectral_norm{key}"][STEPS] == pytest.approx(
            float(torch.linalg.matrix_norm(weight, ord=2)), rel=1e-4
        )


TWINS = [
    (ElmanCell, lambda i, h: nn.RNN(i, h)),
    (LSTMCell, lambda i, h: nn.LSTM(i, h)),
    (GRUCell, lambda i, h: nn.GRU(i, h)),
]


@pytest.mark.parametrize(("cls", "make_twin"), TWINS, ids=["rnn", "lstm", "gru"])
def test_recurrent_weight_is_the_twins_weight_hh(cls: Any, make_twin: Any) -> None:
    torch.manual_seed(0)
    twin, cell = make_twin(3, 5), cls(3, 5)
    with torch.no_grad():
        for name, value in twin.named_parameters():
            getattr(cell.rnn, name).copy_(value)
    torch.testing.assert_close(cell.recurrent_weight(), twin.weight_hh_l0, rtol=0, atol=0)


def test_recurrent_weight_of_the_tutorial_rnn_is_i2hs_hidden_half() -> None:
    torch.manual_seed(0)
    cell = SimpleRNN(3, 5)
    x, h = torch.randn(2, 3), torch.randn(2, 5)
    expected = cell.i2h(torch.cat((x, h), dim=1)) - cell.i2h(torch.cat((x, 0 * h), dim=1))
    torch.testing.assert_close(h @ cell.recurrent_weight().T, expected, rtol=1e-5, atol=1e-6)
