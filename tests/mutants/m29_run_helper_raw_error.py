"""rnnlab run's MLflow helper opens the store without turning an absent server into rnnlab's error.

A tracking server away at the start of ``rnnlab run``: the message must name the server, the
retry settings and what to check, as a sweep's does, not MLflow's raw exception. Caught by:
tests/test_mlflow_faults.py (in its subprocesses: the mutant is loaded there too)."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = [
    "tests/test_mlflow_faults.py::test_rnnlab_run_against_an_unreachable_server_prints_why_and_exits_1"
]
SUBPROCESSES = True


def apply() -> None:
    from rnnlab.run._tracking import MlflowTracker

    def make(original: Any) -> Any:
        return lambda self: self.client.search_experiments(max_results=1)

    swap(MlflowTracker, "open_store", make)


def pytest_configure(config: Any) -> None:
    apply()
