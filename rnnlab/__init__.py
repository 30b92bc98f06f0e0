"""rnnlab: a laboratory for vanishing and exploding gradients in recurrent networks.

The public API that plugins and scripts use. Heavy names (anything that needs torch, mlflow or
pydantic) are imported lazily on first attribute access, so that ``rnnlab --help`` stays instant.

Example:
    >>> import rnnlab
    >>> class MyRemedy(rnnlab.Remedy):
    ...     class Params(rnnlab.Params):
    ...         strength: float = 1.0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

__version__ = "0.1.0"

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
    "TaskShape": "rnnlab.taskshape",
    "SequenceModel": "rnnlab.model",
    "RunConfig": "rnnlab.config",
    "ConfigError": "rnnlab.errors",
    "IncompatibleError": "rnnlab.errors",
    "PluginError": "rnnlab.errors",
    "load_run_config": "rnnlab.config",
    "make_plugin_manager": "rnnlab.plugins",
    "Registry": "rnnlab.plugins",
    "train": "rnnlab.train",
    "RunResult": "rnnlab.train",
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
]

if TYPE_CHECKING:
    from rnnlab.base import (
        Cell,
        CellWrapper,
        Dataset,
        LayerTrace,
        Normalizer,
        Params,
        Remedy,
        State,
        TaskKind,
    )
    from rnnlab.config import RunConfig, load_run_config
    from rnnlab.errors import ConfigError, IncompatibleError, PluginError
    from rnnlab.model import SequenceModel
    from rnnlab.plugins import Registry, make_plugin_manager
    from rnnlab.taskshape import TaskShape
    from rnnlab.train import RunResult, train


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
