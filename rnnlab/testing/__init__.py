"""Contract test suites that every cell, dataset and remedy passes, built-in or third-party.

A plugin's whole test is one subclass per class it registers (pytest collects the ``Test*``
subclasses; these bases have no ``Test`` prefix, so importing them collects nothing)::

    class TestMyCell(rnnlab.testing.CellContract):
        cell_cls = MyCell

Class attributes tune a suite (``params``, sizes, the cell or task used alongside). Each suite
ends with a short real training run in which the class is registered as ``"under-test"`` through
:func:`plugin_registering`, the path an installed plugin takes; the classes used alongside (the
``adding`` task, the ``rnn`` cell) come from the installed plugins' registry.
"""

from __future__ import annotations

from rnnlab.testing._cells import CellContract
from rnnlab.testing._datasets import DatasetContract
from rnnlab.testing._remedies import RemedyContract
from rnnlab.testing._support import (
    TINY_ADDING,
    TINY_TRAIN,
    UNDER_TEST,
    installed_registry,
    plugin_registering,
    registry_with,
    short_run,
)

__all__ = [
    "CellContract",
    "DatasetContract",
    "RemedyContract",
    "TINY_ADDING",
    "TINY_TRAIN",
    "UNDER_TEST",
    "installed_registry",
    "plugin_registering",
    "registry_with",
    "short_run",
]
