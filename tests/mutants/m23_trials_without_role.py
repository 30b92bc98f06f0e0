"""A sweep's child runs lack rnnlab.role=trial. Caught by: tests/test_trial_runs.py."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_trial_runs.py"]


def apply() -> None:
    import rnnlab.sweep._trialruns as trialruns
    from rnnlab._names import TAG_ROLE

    def make(original: Any) -> Any:
        def trial_tags(*args: Any) -> dict[str, str]:
            tags: dict[str, str] = original(*args)
            tags.pop(TAG_ROLE)
            return tags

        return trial_tags

    swap(trialruns, "trial_tags", make)


def pytest_configure(config: Any) -> None:
    apply()
