"""What clipping does to the update in a real run: with SGD (no momentum) and clipping at c, a
step moves the weights by lr x the clipped gradient, so by exactly lr x c when clipping by norm
fires and at most lr x c per element when clipping by value; N steps move them at most
N x lr x c. Clipping after ``optimizer.step()`` instead of before it, or a clip that zeroes the
update, breaks these."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import pytest
import torch
from torch import Tensor

import rnnlab
from rnnlab.run import NullTracker, Source, resolve, train
from rnnlab.testing import TINY_TRAIN, registry_with

LR, CLIP, STEPS = 0.5, 1e-3, 6  # the unclipped gradient norm is ~1: clipping always fires


class Snapshot(rnnlab.Remedy):
    """After the remedies before it, records the weights and the gradient the step will use."""

    seen: ClassVar[list[tuple[Tensor, Tensor]]] = []

    def after_backward(self, parameters: Sequence[Tensor], grad_norm: float) -> dict[str, float]:
        weights = torch.cat([p.detach().flatten() for p in parameters])
        grads = torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in parameters]
        )
        Snapshot.seen.append((weights.clone(), grads.clone()))
        return {}


def updates(mode: str) -> tuple[list[Tensor], list[Tensor], NullTracker]:
    """The per-step weight changes and the gradients after clipping, of a clipped SGD run."""
    Snapshot.seen.clear()
    data = {
        "dataset": {"name": "adding", "seq_len": 10, "val_size": 32},
        "cell": {"name": "rnn", "hidden_size": 8},
        "remedies": [{"name": "clip", "mode": mode, "threshold": CLIP}, "snapshot"],
        "train": {**TINY_TRAIN, "steps": STEPS, "optimizer": "sgd", "lr": LR, "plots": False},
    }
    registry = registry_with("remedy", Snapshot, name="snapshot")
    tracker = NullTracker(keep_artifacts=False)
    result = train(resolve(Source(path=None, data=data), registry), tracker)
    assert result.outcome == "completed", result.message
    assert len(Snapshot.seen) == STEPS
    weights = [w for w, _ in Snapshot.seen]
    deltas = [b - a for a, b in zip(weights[:-1], weights[1:], strict=True)]
    return deltas, [g for _, g in Snapshot.seen[:-1]], tracker


def test_clipping_by_norm_bounds_every_update() -> None:
    deltas, grads, tracker = updates("norm")
    assert {v for _, v in tracker.history["grad/clipped"]} == {1.0}
    assert min(v for _, v in tracker.history["grad/global_norm"]) > 100 * CLIP
    for step, (delta, grad) in enumerate(zip(deltas, grads, strict=True)):
        # the update is the clipped gradient's: clipping came before optimizer.step()
        torch.testing.assert_close(delta, -LR * grad, rtol=1e-4, atol=1e-7)
        assert float(delta.norm()) == pytest.approx(LR * CLIP, rel=1e-3), f"step {step}"
    total = float(sum(deltas, torch.zeros_like(deltas[0])).norm())
    assert 0 < total <= len(deltas) * LR * CLIP * (1 + 1e-6)


def test_clipping_by_value_bounds_every_element_of_every_update() -> None:
    deltas, grads, tracker = updates("value")
    assert {v for _, v in tracker.history["grad/clipped"]} == {1.0}
    for delta, grad in zip(deltas, grads, strict=True):
        torch.testing.assert_close(delta, -LR * grad, rtol=1e-4, atol=1e-7)
        assert float(delta.abs().max()) <= LR * CLIP * (1 + 1e-5)
        assert float(delta.abs().max()) == pytest.approx(LR * CLIP, rel=1e-3)  # some clamped
