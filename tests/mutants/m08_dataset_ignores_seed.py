"""adding ignores its seed: every sweep seed sees the same data. Caught by: DatasetContract."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_contracts.py", "-k", "TestAdding"]


def apply() -> None:
    from rnnlab_tasks.adding import AddingProblem

    def make(original: Any) -> Any:
        def __init__(self: Any, params: Any = None, seed: int = 0) -> None:
            original(self, params, 0)

        return __init__

    swap(AddingProblem, "__init__", make)


def pytest_configure(config: Any) -> None:
    apply()
