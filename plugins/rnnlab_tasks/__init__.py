"""rnnlab's built-in datasets: the adding problem, copy memory, sequential digits, MNIST,
time-series forecasting and character-level language modelling.

Importing this package is cheap: the dataset classes (and torch) are imported only when the hook
runs.
"""

from __future__ import annotations

from collections.abc import Callable

import rnnlab


@rnnlab.hookimpl
def register_datasets(register: Callable[[str, type], None]) -> None:
    """Register the built-in datasets.

    Args:
        register: ``register(name, cls)``, called once per dataset.
    """
    from rnnlab_tasks.adding import AddingProblem
    from rnnlab_tasks.chars import CharLanguageModel
    from rnnlab_tasks.copy import CopyMemory
    from rnnlab_tasks.digits import SequentialDigits
    from rnnlab_tasks.forecast import TimeSeriesForecast
    from rnnlab_tasks.mnist import SequentialMNIST

    register("adding", AddingProblem)
    register("copy", CopyMemory)
    register("digits", SequentialDigits)
    register("mnist", SequentialMNIST)
    register("forecast", TimeSeriesForecast)
    register("chars", CharLanguageModel)
