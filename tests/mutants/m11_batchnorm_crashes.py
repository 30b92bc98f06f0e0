"""Batch-norm raises on every trial (strict xfail: still xfailed). Caught by: the slow test."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION: list[str] = []
SLOW_SELECTION = ["tests/test_replications.py", "-m", "slow", "-k", "batchnorm"]
SUBPROCESSES = True  # the sweep trains in spawned worker processes


def apply() -> None:
    from rnnlab_remedies.norm import TimeBatchNorm

    def make(original: Any) -> Any:
        def forward(self: Any, x: Any, t: Any) -> Any:
            raise RuntimeError("planted defect: batch-norm crashes")

        return forward

    swap(TimeBatchNorm, "forward", make)


def pytest_configure(config: Any) -> None:
    apply()
