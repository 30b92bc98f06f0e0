"""CellShape.build draws from torch's global stream. Caught by: tests/test_plugin_authors.py."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_plugin_authors.py", "-k", "check_sees"]


def apply() -> None:
    from rnnlab.base import CellShape

    def make(original: Any) -> Any:
        def build(self: Any, input_size: Any = None, hidden_size: Any = None) -> Any:
            inputs = self._task.input_size if input_size is None else input_size
            return self.cls(inputs, hidden_size or self.hidden_size, self.params)  # unguarded

        return build

    swap(CellShape, "build", make)


def pytest_configure(config: Any) -> None:
    apply()
