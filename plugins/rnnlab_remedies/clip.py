"""Gradient clipping (Pascanu et al. 2013, Algorithm 1), by global norm or element-wise by value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

import rnnlab


class GradientClipping(rnnlab.Remedy):
    """``mode: norm``: if ||g|| > threshold, g <- threshold * g / ||g||, the norm taken over all
    parameters together (Pascanu's heuristic: 0.5x-10x the average gradient norm).
    ``mode: value``: every element clamped to [-threshold, threshold] (as in the uRNN code), which
    changes the gradient's direction. Records whether it fired in ``grad/clipped``."""

    class Params(rnnlab.Params):
        mode: Literal["norm", "value"] = Field(
            "norm", description="clip the global norm or each value"
        )
        threshold: float = Field(1.0, gt=0, description="maximum norm (norm) or magnitude (value)")

    params: Params

    def after_backward(self, parameters: Sequence[Tensor], grad_norm: float) -> dict[str, float]:
        threshold = float(self.params.threshold)
        grads = [p.grad for p in parameters if p.grad is not None]
        if self.params.mode == "norm":
            fired = grad_norm > threshold
            if fired:
                torch._foreach_mul_(grads, threshold / (grad_norm + 1e-6))
        else:
            fired = any(bool((g.abs() > threshold).any()) for g in grads)
            for g in grads:
                g.clamp_(-threshold, threshold)
        return {self.CLIPPED: float(fired)}  # the core metric grad/clipped
