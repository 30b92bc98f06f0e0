"""Gradient-flow measurement: the ||dL/dh_t|| curve and its summaries.

The curve comes from zero tensors the model adds to every h_t on a probed step (Cooijmans et al.
2016): after backward their gradient is the total derivative dL/dh_t, through every path. Norms are
taken in float64 so that tiny float32 gradients do not underflow when squared; a value that is
exactly zero has underflowed (denormals are flushed while training) and is reported as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

STEPS_IN_PAST_FLOOR = 1e-10
"""Pascanu et al. 2013 count a step while ||dC/dh_k||^2 >= 1e-20, i.e. ||dC/dh_k|| >= 1e-10."""


def flow_curve(probe: Tensor) -> np.ndarray:
    """||dL/dh_t|| for every t: the per-example norm over hidden units, averaged over the batch.

    Args:
        probe: a probe tensor ``[T, B, H]`` whose ``.grad`` has been filled by backward.
    """
    grad = probe.grad
    if grad is None:  # the loss does not depend on this layer at all
        return np.zeros(probe.shape[0])
    norms: np.ndarray = grad.detach().double().norm(dim=-1).mean(dim=1).cpu().numpy()
    return norms


@dataclass(frozen=True)
class FlowSummary:
    """Summaries of one gradient-flow curve.

    Attributes:
        log10_ratio: log10(||dL/dh_1|| / ||dL/dh_T||); very negative = vanishing. When a norm
            underflowed, it is replaced by the dtype's smallest normal number, so the ratio is a
            bound (``underflow > 0`` says so).
        decay_rate: orders of magnitude lost per step back in time (least-squares slope of
            log10 ||dL/dh_t|| against T - t over the steps that did not underflow); positive means
            vanishing, negative exploding.
        steps_in_past: fraction of steps with ||dL/dh_t|| >= 1e-10 (Pascanu et al. 2013).
        underflow: fraction of steps whose norm underflowed to exactly zero.
    """

    log10_ratio: float
    decay_rate: float
    steps_in_past: float
    underflow: float
    extra: dict[str, float] = field(default_factory=dict)

    def as_metrics(self, prefix: str = "grad/", suffix: str = "") -> dict[str, float]:
        return {
            f"{prefix}log10_ratio{suffix}": self.log10_ratio,
            f"{prefix}decay_rate{suffix}": self.decay_rate,
            f"{prefix}steps_in_past{suffix}": self.steps_in_past,
            f"{prefix}underflow{suffix}": self.underflow,
        }


def summarize(
    norms: np.ndarray, floor: float = float(torch.finfo(torch.float32).tiny)
) -> FlowSummary:
    """Summarise a curve ``norms[t]`` (t = 0 is the first step)."""
    steps = norms.shape[0]
    underflowed = norms <= 0.0
    logs = np.log10(np.maximum(norms, floor))
    ratio = float(logs[0] - logs[-1])
    ok = ~underflowed
    decay = 0.0
    if ok.sum() >= 2:
        distance = (steps - 1 - np.arange(steps))[ok]  # steps back from the last one
        slope = np.polyfit(distance.astype(np.float64), logs[ok], 1)[0]
        decay = float(-slope)
    if not math.isfinite(ratio):
        ratio = float("nan")
    return FlowSummary(
        log10_ratio=ratio,
        decay_rate=decay,
        steps_in_past=float((norms >= STEPS_IN_PAST_FLOOR).mean()),
        underflow=float(underflowed.mean()),
    )


class FlowRecorder:
    """Collects the curves of every probed step, per layer, for the run's artifacts."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.curves: list[list[np.ndarray]] = []  # [probe][layer] -> [T]

    def record(self, step: int, probes: list[Tensor]) -> list[FlowSummary]:
        curves = [flow_curve(z) for z in probes]
        self.steps.append(step)
        self.curves.append(curves)
        return [summarize(c) for c in curves]

    def array(self) -> np.ndarray:
        """The gradient-flow array: ``[probe step, layer, time step]``."""
        if not self.curves:
            return np.zeros((0, 0, 0))
        return np.stack([np.stack(per_layer) for per_layer in self.curves])
