"""rnnlab's built-in datasets: the adding problem, copy memory, sequential digits, MNIST,
time-series forecasting and character-level language modelling.

Importing this package is cheap: the datasets are registered as ``"module:Class"`` references,
which rnnlab imports (with torch) on first use.
"""

from __future__ import annotations

import rnnlab


@rnnlab.hookimpl
def register_datasets(register: rnnlab.Register) -> None:
    """Register the built-in datasets.

    Args:
        register: ``register(name, "module:Class")``, called once per dataset.
    """
    register("adding", "rnnlab_tasks.adding:AddingProblem")
    register("copy", "rnnlab_tasks.copy:CopyMemory")
    register("digits", "rnnlab_tasks.digits:SequentialDigits")
    register("mnist", "rnnlab_tasks.mnist:SequentialMNIST")
    register("forecast", "rnnlab_tasks.forecast:TimeSeriesForecast")
    register("chars", "rnnlab_tasks.chars:CharLanguageModel")
