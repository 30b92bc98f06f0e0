"""The probe's norms in the vanishing regime: a gradient of 1e-25 is measured, not underflow.

float32 gradients down to 1.2e-38 are normal numbers, but their squares underflow below 1e-19:
norms taken in float32 report 0 for every ||dL/dh_t|| under ~1e-19 (on the gradflow setting the
underflow went from 0.00 to 0.49), which is why rnnlab/run/_probe.py takes them in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import rnnlab
from rnnlab.run import NullTracker, Source, flow_curve, resolve, summarize, train
from rnnlab.testing import TINY_TRAIN, registry_with

FACTOR = 0.005  # each step back multiplies dL/dh_t by this: 12 steps reach ~5e-28


class Contracting(rnnlab.Cell):
    """h_t = FACTOR * h_{t-1} + W x_t: a linear cell whose gradient shrinks by FACTOR a step."""

    def __init__(self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None):
        super().__init__(input_size, hidden_size, params)
        self.input = torch.nn.Linear(input_size, hidden_size)

    def forward(self, x_t, state):
        h = FACTOR * state[0] + self.input(x_t)
        return h, (h,)


def test_a_1e_25_gradient_is_measured_not_underflow() -> None:
    z = torch.zeros(3, 4, 5, requires_grad=True)
    z.grad = torch.full((3, 4, 5), 1e-25)  # float32, a normal number
    assert torch.linalg.vector_norm(z.grad[0, 0]).item() == 0.0  # float32 norms underflow here
    curve = flow_curve(z)
    assert curve.dtype == np.float64
    np.testing.assert_allclose(curve, 1e-25 * math.sqrt(5), rtol=1e-6)
    assert summarize(curve).underflow == 0.0 and summarize(curve).steps_in_past == 0.0


def test_a_run_in_the_vanishing_regime_reports_no_underflow() -> None:
    registry = registry_with("cell", Contracting)
    data = {
        "dataset": {"name": "adding", "seq_len": 12, "val_size": 32},
        "cell": {"name": "under-test", "hidden_size": 8},
        "train": {**TINY_TRAIN, "steps": 1, "plots": False},
    }
    tracker = NullTracker()
    result = train(resolve(Source(path=None, data=data), registry), tracker)
    assert result.outcome == "completed", result.message
    ((step, underflow),) = tracker.history["grad/underflow"]
    assert step == 0 and underflow == 0.0
    # the curve falls by FACTOR a step: log10 ratio = 11 * log10(FACTOR), ~ -25.3
    ((_, ratio),) = tracker.history["grad/log10_ratio"]
    assert ratio == pytest.approx(11 * math.log10(FACTOR), abs=0.5)
    ((_, decay),) = tracker.history["grad/decay_rate"]
    assert decay == pytest.approx(-math.log10(FACTOR), rel=0.05)
