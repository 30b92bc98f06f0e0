"""Probe norms taken in float32: a 1e-25 gradient underflows. Caught by: test_probe.py."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.mutants import swap

SELECTION = ["tests/test_probe.py"]


def apply() -> None:
    import rnnlab.run._probe

    if hasattr(rnnlab.run._probe, "grad_curve"):  # grad_curve(grad, steps) feeds every curve

        def make(original: Any) -> Any:
            def grad_curve(grad: Any, steps: int) -> np.ndarray:
                if grad is None:
                    return np.zeros(steps)
                return grad.detach().float().norm(dim=-1).mean(dim=1).double().cpu().numpy()

            return grad_curve

        swap(rnnlab.run._probe, "grad_curve", make)
    else:

        def make_flow(original: Any) -> Any:
            def flow_curve(probe: Any) -> np.ndarray:
                if probe.grad is None:
                    return np.zeros(probe.shape[0])
                return probe.grad.detach().float().norm(dim=-1).mean(dim=1).double().numpy()

            return flow_curve

        swap(rnnlab.run._probe, "flow_curve", make_flow)


def pytest_configure(config: Any) -> None:
    apply()
