"""clip zeroes every gradient. Caught by: RemedyContract, test_clipping.py."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_contracts.py", "tests/test_clipping.py", "-k", "Clip"]
SLOW_SELECTION = ["tests/test_replications.py", "-m", "slow", "-k", "clipping"]
SUBPROCESSES = True  # the slow selection's sweep trains in spawned worker processes


def apply() -> None:
    from rnnlab_remedies.clip import GradientClipping

    def make(original: Any) -> Any:
        def after_backward(self: Any, parameters: Any, grad_norm: float) -> Any:
            metrics = original(self, parameters, grad_norm)
            for p in parameters:
                if p.grad is not None:
                    p.grad.zero_()
            return metrics

        return after_backward

    swap(GradientClipping, "after_backward", make)


def pytest_configure(config: Any) -> None:
    apply()
