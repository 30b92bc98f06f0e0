"""A sweep key documented only inside a word (worker in workers). Caught by: test_docs.py."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_docs.py", "-k", "sweep_key"]


def apply() -> None:
    import rnnlab.sweep._plan

    def make(original: Any) -> Any:
        class SweepSection(original):  # type: ignore[misc, valid-type]
            worker: int = 0

        return SweepSection

    swap(rnnlab.sweep._plan, "SweepSection", make)


def pytest_configure(config: Any) -> None:
    apply()
