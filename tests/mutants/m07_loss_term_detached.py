"""A loss term built from detached states (reaches no weight). Caught by: test_loss_term."""

from __future__ import annotations

import sys
from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_contracts.py", "-k", "HiddenPenalty and loss_term"]


def apply() -> None:
    # tests/test_contracts.py's HiddenPenalty, as pytest imported that module
    modules = [m for n, m in list(sys.modules.items()) if n.rsplit(".", 1)[-1] == "test_contracts"]
    owners = [m.HiddenPenalty for m in modules if isinstance(vars(m).get("HiddenPenalty"), type)]
    if not owners:
        raise RuntimeError("no module defines HiddenPenalty: collect tests/test_contracts.py")

    def make(original: Any) -> Any:
        def loss_term(self: Any, loss: Any, traces: Any) -> Any:
            hidden = [h.detach() for trace in traces for h in trace.hidden]
            value = sum(h.square().mean() for h in hidden) / len(hidden)
            return value, {"penalty/value": float(value)}

        return loss_term

    for owner in owners:
        swap(owner, "loss_term", make, key=f"{owner.__module__}.HiddenPenalty.loss_term")


def pytest_collection_finish(session: Any) -> None:
    apply()  # the class exists once the test modules are imported
