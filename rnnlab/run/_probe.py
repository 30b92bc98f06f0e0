"""Gradient-flow measurement: the ||dL/dh_t|| curves and their summaries.

Two curves per layer on every probed step, both per time step t of the sequence:

* the **total curve** ||dL/dh_t||: L is the task's training loss (remedies' loss terms excluded);
  it comes from zero tensors the model adds to every h_t on a probed step (Cooijmans et al.
  2016): after backward their gradient is the total derivative dL/dh_t, through every path.
* the **target curve** ||dL_target/dh_t||: L_target is the share of L that comes from the task's
  target steps, the steps whose loss needs memory (:meth:`rnnlab.base.Dataset.target_loss`:
  copy's 10 recall steps, the last step of a last-step task). With a loss at every step, dL/dh_t
  contains step t's own loss term, so the total curve stays flat while the signal from the
  target steps vanishes (copy T=50 at init, tanh RNN: total log10 ratio +0.07, target -14.4;
  shared/MEASURED.md); the target curve is the one Arjovsky et al. 2016 and Pascanu et al. 2013
  plot, the gradient of a loss at the end of the sequence. It is taken with ``autograd.grad``
  before the full backward; when the target loss is the whole loss the two curves are the same
  and nothing extra runs.

Norms are taken in float64 so that tiny float32 gradients do not underflow when squared; a value
that is exactly zero has underflowed (denormals are flushed while training) and is reported as
such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from rnnlab._names import FLOW, FLOW_SUMMARIES, TARGET_FLOW, layer_key

STEPS_IN_PAST_FLOOR = 1e-10
"""Pascanu et al. 2013 count a step while ||dC/dh_k||^2 >= 1e-20, i.e. ||dC/dh_k|| >= 1e-10."""


def grad_curve(grad: Tensor | None, steps: int) -> np.ndarray:
    """||g_t|| for every t of a gradient ``g`` ``[T, B, H]``: the per-example norm over hidden
    units, averaged over the batch (float64). None (the loss does not depend on the layer) gives
    zeros of length ``steps``."""
    if grad is None:
        return np.zeros(steps)
    norms: np.ndarray = grad.detach().double().norm(dim=-1).mean(dim=1).cpu().numpy()
    return norms


def flow_curve(probe: Tensor) -> np.ndarray:
    """||dL/dh_t|| for every t (:func:`grad_curve` of ``probe.grad``).

    Args:
        probe: a probe tensor ``[T, B, H]`` whose ``.grad`` has been filled by backward.
    """
    return grad_curve(probe.grad, probe.shape[0])


def target_gradients(target: Tensor | None, probes: list[Tensor]) -> list[Tensor | None] | None:
    """dL_target/dh_t of every layer (one ``[T, B, H]`` tensor per probe, None where the target
    does not depend on a layer), before the full backward: the graph is retained for it and no
    parameter's ``.grad`` is touched. None when ``target`` is None, the target loss being the
    whole loss: the target curve is then the total curve and nothing runs."""
    if target is None or not probes:
        return None
    grads = torch.autograd.grad(target, probes, retain_graph=True, allow_unused=True)
    return list(grads)


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

    def as_metrics(self, prefix: str = FLOW, suffix: str = "") -> dict[str, float]:
        """``{prefix}<summary>{suffix}`` for each of :data:`rnnlab._names.FLOW_SUMMARIES`."""
        return {f"{prefix}{name}{suffix}": getattr(self, name) for name in FLOW_SUMMARIES}


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
    """Collects both curves of every probed step, per layer, for the run's artifacts."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.curves: list[list[np.ndarray]] = []  # [probe][layer] -> [T], the total curve
        self.targets: list[list[np.ndarray]] = []  # [probe][layer] -> [T], the target curve

    def record(
        self, step: int, probes: list[Tensor], targets: list[Tensor | None] | None = None
    ) -> tuple[list[FlowSummary], list[FlowSummary]]:
        """Keep the curves of a probed step; return their summaries (total, target) per layer.

        Args:
            probes: the probes, their ``.grad`` filled by the task loss's backward.
            targets: :func:`target_gradients`; None: the target curve is the total curve.
        """
        curves = [flow_curve(z) for z in probes]
        if targets is None:
            picked = curves
        else:
            picked = [grad_curve(g, z.shape[0]) for g, z in zip(targets, probes, strict=True)]
        self.steps.append(step)
        self.curves.append(curves)
        self.targets.append(picked)
        summaries = [summarize(c) for c in curves]
        return summaries, summaries if targets is None else [summarize(c) for c in picked]

    def array(self) -> np.ndarray:
        """The total curves: ``[probe step, layer, time step]``."""
        return _stack(self.curves)

    def target_array(self) -> np.ndarray:
        """The target curves, same shape as :meth:`array`."""
        return _stack(self.targets)


def _stack(curves: list[list[np.ndarray]]) -> np.ndarray:
    if not curves:
        return np.zeros((0, 0, 0))
    return np.stack([np.stack(per_layer) for per_layer in curves])


def flow_metrics(total: list[FlowSummary], target: list[FlowSummary]) -> dict[str, float]:
    """Both curves' summaries as metrics: ``grad/<summary>`` and ``grad/target/<summary>``, the
    top layer plain and a lower layer K with ``/layerK``."""
    layers = len(total)
    metrics: dict[str, float] = {}
    for layer, (mine, aim) in enumerate(zip(total, target, strict=True)):
        suffix = layer_key("", layer, layers)
        metrics.update(mine.as_metrics(FLOW, suffix))
        metrics.update(aim.as_metrics(TARGET_FLOW, suffix))
    return metrics
