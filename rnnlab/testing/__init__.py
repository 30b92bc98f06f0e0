"""Contract test suites that every cell, dataset and remedy passes, built-in or third-party.

A plugin's whole test is one subclass per class it registers (pytest collects the ``Test*``
subclasses; these bases have no ``Test`` prefix, so importing them collects nothing)::

    class TestMyCell(rnnlab.testing.CellContract):
        cell_cls = MyCell

Class attributes tune a suite (``params``, sizes, the cell or task used alongside). Each suite
ends with a short real training run in which the class is registered as ``"under-test"`` through
:func:`plugin_registering`, the path an installed plugin takes; the classes used alongside (the
``adding`` task, the ``rnn`` cell) come from the installed plugins' registry. The cell and remedy
suites also train on the suite's own tiny task (:class:`Learnable`, :func:`learning_run`) and
require that it learns.

Two attributes say that a class departs from the contract on purpose:
``unused_parameters`` (cells and remedies: parameter names the recurrence never uses, so they get
no gradient) and ``same_data_for_every_seed`` (datasets: the same batches whatever the seed).
docs/plugins.md ("Testing it") lists what each suite checks.
"""

from __future__ import annotations

try:
    import pytest  # noqa: F401 - the suites are pytest classes
except ImportError as exc:  # rnnlab does not depend on pytest
    raise ModuleNotFoundError(
        "rnnlab.testing needs pytest, which rnnlab does not install: pip install pytest (or "
        "your plugin's test extra: pip install -e '.[test]')",
        name="pytest",
    ) from exc

from rnnlab.testing._available import (
    UNDER_TEST,
    PluginSkipWarning,
    installed_registry,
    needed,
    plugin_registering,
    registry_with,
)
from rnnlab.testing._cells import CellContract
from rnnlab.testing._datasets import DatasetContract
from rnnlab.testing._learning import LEARNABLE, LEARNED, Learnable, learning_run
from rnnlab.testing._remedies import RemedyContract
from rnnlab.testing._support import (
    TINY_ADDING,
    TINY_TRAIN,
    missing_gradients,
    probes_match_autograd,
    short_run,
)

__all__ = [
    "CellContract",
    "DatasetContract",
    "LEARNABLE",
    "LEARNED",
    "Learnable",
    "PluginSkipWarning",
    "RemedyContract",
    "TINY_ADDING",
    "TINY_TRAIN",
    "UNDER_TEST",
    "installed_registry",
    "learning_run",
    "missing_gradients",
    "needed",
    "plugin_registering",
    "probes_match_autograd",
    "registry_with",
    "short_run",
]
