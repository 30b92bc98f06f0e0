"""The report downloads every artifact through MLflow, even from a local store.

Issue 21: the flagship's 152 npz files cost ~3.7 s that way. Caught by:
tests/test_report_reading.py."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_report_reading.py"]


def apply() -> None:
    import rnnlab.report._artifacts as artifacts

    swap(artifacts, "local_folder", lambda original: lambda artifact_uri: None)


def pytest_configure(config: Any) -> None:
    apply()
