"""clip rebinds each p.grad to new zeros. Caught by: test_forward_backward_after_backward."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_contracts.py", "-k", "Clip and forward_backward"]


def apply() -> None:
    import torch
    from rnnlab_remedies.clip import GradientClipping

    def make(original: Any) -> Any:
        def after_backward(self: Any, parameters: Any, grad_norm: float) -> Any:
            metrics = original(self, parameters, grad_norm)
            for p in parameters:
                if p.grad is not None:
                    p.grad = torch.zeros_like(p.grad)  # a list taken before still looks fine
            return metrics

        return after_backward

    swap(GradientClipping, "after_backward", make)


def pytest_configure(config: Any) -> None:
    apply()
