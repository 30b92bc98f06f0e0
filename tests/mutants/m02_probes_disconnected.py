"""The probes are left out of the time loop. Caught by: probes_equal_*, every test_trains."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = [
    "tests/test_contracts.py",
    "tests/test_cells.py",
    "-k",
    "probes_equal or test_trains",
]


def apply() -> None:
    import rnnlab.run._model

    def make(run_loop: Any) -> Any:
        def disconnected(cell: Any, x: Any, state: Any, probe: Any, *args: Any, **kw: Any) -> Any:
            return run_loop(cell, x, state, None, *args, **kw)

        return disconnected

    swap(rnnlab.run._model, "run_loop", make)


def pytest_configure(config: Any) -> None:
    apply()
