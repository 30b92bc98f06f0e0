"""rnnlab: a laboratory for vanishing and exploding gradients in recurrent networks.

The public API that plugins and scripts use: plugins import ``rnnlab`` (and ``rnnlab.testing``)
and nothing else of it. Heavy names (anything that needs torch, mlflow or pydantic) are imported
lazily on first attribute access, so that ``rnnlab --help`` stays instant.

Example:
    >>> import rnnlab
    >>> class MyRemedy(rnnlab.Remedy):
    ...     class Params(rnnlab.Params):
    ...         strength: float = 1.0
    ...
    ...     params: Params
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

from rnnlab._names import VERSION

__version__ = VERSION

hookimpl = pluggy.HookimplMarker("rnnlab")
"""Marker for plugin hook implementations: ``@rnnlab.hookimpl``."""

_LAZY = {
    "Params": "rnnlab.base",
    "Cell": "rnnlab.base",
    "Dataset": "rnnlab.base",
    "Remedy": "rnnlab.base",
    "TaskKind": "rnnlab.base",
    "State": "rnnlab.base",
    "Normalizer": "rnnlab.base",
    "CellWrapper": "rnnlab.base",
    "LayerTrace": "rnnlab.base",
    "TaskShape": "rnnlab.base",
    "CellShape": "rnnlab.base",
    "SequenceModel": "rnnlab.run",
    "RunConfig": "rnnlab.run",
    "ConfigError": "rnnlab.errors",
    "IncompatibleError": "rnnlab.errors",
    "PluginError": "rnnlab.errors",
    "load_run_config": "rnnlab.run",
    "make_plugin_manager": "rnnlab.plugins",
    "Registry": "rnnlab.plugins",
    "train": "rnnlab.run",
    "RunResult": "rnnlab.run",
    # added by issue 16: what a plugin needs, so that it imports nothing of rnnlab but rnnlab
    "Register": "rnnlab.hookspecs",
    "NormalizerFactory": "rnnlab.base",
    "NormTerms": "rnnlab.base",
    "IdentityInit": "rnnlab.base",
    "RecurrentInit": "rnnlab.base",
    "RecurrentInitializer": "rnnlab.base",
    "Normalizable": "rnnlab.base",
    "SeededDataset": "rnnlab.base",
    "DataError": "rnnlab.errors",
    # issue 19: the dynamics of a cell's state map
    "lyapunov_spectrum": "rnnlab.run",
    "Spectrum": "rnnlab.run",
    "exponents_along": "rnnlab.run",
    "step_jacobian": "rnnlab.run",
    "jacobian_log_singular_values": "rnnlab.run",
    # issue 21: a sweep as data (rnnlab.report; not imported under TYPE_CHECKING either, since
    # the facade sits below the report layer, tests/test_layers.py)
    "results": "rnnlab.report",
    "flow": "rnnlab.report",
}

__all__ = [
    "__version__",
    "hookimpl",
    "Params",
    "Cell",
    "Dataset",
    "Remedy",
    "TaskKind",
    "State",
    "Normalizer",
    "CellWrapper",
    "LayerTrace",
    "TaskShape",
    "CellShape",
    "SequenceModel",
    "RunConfig",
    "ConfigError",
    "IncompatibleError",
    "PluginError",
    "load_run_config",
    "make_plugin_manager",
    "Registry",
    "train",
    "RunResult",
    "Register",
    "NormalizerFactory",
    "NormTerms",
    "IdentityInit",
    "RecurrentInit",
    "RecurrentInitializer",
    "Normalizable",
    "SeededDataset",
    "DataError",
    "lyapunov_spectrum",
    "Spectrum",
    "exponents_along",
    "step_jacobian",
    "jacobian_log_singular_values",
    "results",
    "flow",
]

if TYPE_CHECKING:
    from rnnlab.base import (
        Cell,
        CellShape,
        CellWrapper,
        Dataset,
        IdentityInit,
        LayerTrace,
        Normalizable,
        Normalizer,
        NormalizerFactory,
        NormTerms,
        Params,
        RecurrentInit,
        RecurrentInitializer,
        Remedy,
        SeededDataset,
        State,
        TaskKind,
        TaskShape,
    )
    from rnnlab.errors import ConfigError, DataError, IncompatibleError, PluginError
    from rnnlab.hookspecs import Register
    from rnnlab.plugins import Registry, make_plugin_manager
    from rnnlab.run import (
        RunConfig,
        RunResult,
        SequenceModel,
        Spectrum,
        exponents_along,
        jacobian_log_singular_values,
        load_run_config,
        lyapunov_spectrum,
        step_jacobian,
        train,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
