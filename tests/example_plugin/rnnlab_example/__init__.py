"""An example third-party rnnlab plugin: a cell, a task and a remedy, registered by entry point.

Importing this module is cheap: the classes (and torch) load only when a hook runs.
"""

from __future__ import annotations

import rnnlab


@rnnlab.hookimpl
def register_cells(register: rnnlab.Register) -> None:
    from rnnlab_example.mgu import MinimalGatedUnit

    register("mgu", MinimalGatedUnit)


@rnnlab.hookimpl
def register_datasets(register: rnnlab.Register) -> None:
    from rnnlab_example.temporal_order import TemporalOrder

    register("temporal_order", TemporalOrder)


@rnnlab.hookimpl
def register_remedies(register: rnnlab.Register) -> None:
    from rnnlab_example.regulariser import NormPreserving

    register("norm_preserving", NormPreserving)
