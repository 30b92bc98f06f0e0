"""optimizer.step() is never taken, so nothing learns. Caught by: the suites' test_learns."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_contracts.py", "tests/test_learning.py", "-k", "learns"]


def apply() -> None:
    import rnnlab.run._train

    def make(original: Any) -> Any:
        def make_optimizer(model: Any, run: Any) -> Any:
            optimizer = original(model, run)
            optimizer.step = lambda *args, **kwargs: None
            return optimizer

        return make_optimizer

    swap(rnnlab.run._train, "make_optimizer", make)


def pytest_configure(config: Any) -> None:
    apply()
