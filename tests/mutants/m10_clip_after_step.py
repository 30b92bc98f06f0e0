"""Clipping runs after optimizer.step(): the update is unclipped. Caught by: test_clipping."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_clipping.py"]
_step: dict[str, Any] = {}


def apply() -> None:
    from rnnlab_remedies.clip import GradientClipping

    import rnnlab.run._train

    def make_optimizer(original: Any) -> Any:
        def make(model: Any, run: Any) -> Any:
            optimizer = original(model, run)
            _step.clear()
            if any(r.name == "clip" for r in run.remedies):
                _step["take"] = optimizer.step  # taken by the clip, before it clips
                optimizer.step = lambda *args, **kwargs: None
            return optimizer

        return make

    def make_after(original: Any) -> Any:
        def after_backward(self: Any, parameters: Any, grad_norm: float) -> Any:
            if "take" in _step:
                _step["take"]()
            return original(self, parameters, grad_norm)

        return after_backward

    swap(rnnlab.run._train, "make_optimizer", make_optimizer)
    swap(GradientClipping, "after_backward", make_after)


def pytest_configure(config: Any) -> None:
    apply()
