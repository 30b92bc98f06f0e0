"""The report links its rows to whatever MLflow UI answers, not one that knows the runs.

A UI on another store gives links that open nothing. Caught by: tests/test_ui.py."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_ui.py::test_ui_serves_the_store_and_stops_cleanly_on_ctrl_c"]


def apply() -> None:
    import rnnlab.report._uilinks as uilinks

    swap(uilinks, "knows_run", lambda original: lambda ui, run_id: True)


def pytest_configure(config: Any) -> None:
    apply()
