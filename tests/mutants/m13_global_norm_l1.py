"""grad/global_norm is built from per-parameter L1 norms. Caught by: tests/test_metrics.py."""

from __future__ import annotations

import types
from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_metrics.py", "-k", "global_norm"]


def apply() -> None:
    import torch

    import rnnlab.run._train

    class L1Torch(types.ModuleType):
        """torch as rnnlab.run._train sees it, with _foreach_norm taking L1 norms."""

        def __getattr__(self, name: str) -> Any:
            return getattr(torch, name)

        @staticmethod
        def _foreach_norm(tensors: Any, *args: Any, **kwargs: Any) -> Any:
            return [t.abs().sum() for t in tensors]

    swap(rnnlab.run._train, "torch", lambda original: L1Torch("torch"))


def pytest_configure(config: Any) -> None:
    apply()
