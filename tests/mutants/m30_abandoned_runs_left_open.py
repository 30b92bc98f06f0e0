"""A sweep's next start leaves open the runs a stop while MLflow was away could not end.

Caught by: tests/test_mlflow_faults.py (slow: ``--slow``; in its subprocesses: the mutant is
loaded there too)."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION: list[str] = []
SLOW_SELECTION = [
    "tests/test_mlflow_faults.py::"
    "test_a_tracking_server_lost_mid_trial_stops_the_sweep_and_the_next_start_ends_its_runs",
    "-m",
    "slow",
]
SUBPROCESSES = True


def apply() -> None:
    import rnnlab.sweep._trialruns as trialruns

    swap(trialruns, "close_abandoned", lambda original: lambda *args: [])


def pytest_configure(config: Any) -> None:
    apply()
