"""One training run: its config, model, probes, training loop and records.

A run knows nothing of Optuna or of sweeps: this package never imports optuna, ``rnnlab.sweep``,
``rnnlab.report`` or ``rnnlab.commands`` (tests/test_layers.py). A sweep hands :func:`train` a
resolved run and a callback that may stop it early.

Each name is imported from its private module on first use (as ``rnnlab`` does), so that a caller
loads only what it uses: ``rnnlab ui`` reads a sweep's name with :func:`load_yaml` without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_MODULES = {
    "_sources": ("Key", "Source", "apply_override", "dotted", "load_yaml"),
    "_config": (
        "CellConfig",
        "DatasetConfig",
        "GroupLr",
        "ModelConfig",
        "PluginChoice",
        "RemedyConfig",
        "ResolvedRun",
        "RunConfig",
        "TrainConfig",
        "load_run_config",
        "parse_run_config",
        "pydantic_errors",
        "resolve",
    ),
    "_devices": ("describe_device", "resolve_device"),
    "_model": ("SequenceModel", "build_model", "run_loop"),
    "_probe": (
        "STEPS_IN_PAST_FLOOR",
        "FlowRecorder",
        "FlowSummary",
        "flow_curve",
        "flow_metrics",
        "grad_curve",
        "summarize",
        "target_gradients",
    ),
    "_evaluation": ("Selection", "evaluate", "nonfinite", "weight_metrics"),
    "_result": ("Progress", "RunResult", "summary_line"),
    "_optim": ("make_optimizer", "param_groups"),
    "_train": ("build", "loss_terms", "prepare_process", "train"),
    "_outside": ("OutsideSteps",),
    "_tracking": ("MlflowTracker", "NullTracker", "Tracker", "running_runs"),
    "_background": ("BackgroundTracker",),
    "_drawing": ("ORDER_FILE", "Drawer", "log_files"),
    "_artifacts": ("remedy_label", "run_name", "tags"),
    "_figures": ("FLOOR", "TARGET", "TOTAL", "flow_curves", "flow_heatmap", "pyplot"),
    "_jacobians": (
        "flatten_state",
        "jacobian_log_singular_values",
        "log_singular_values_along",
        "state_width",
        "step_jacobian",
    ),
    "_lyapunov": ("Spectrum", "exponents_along", "lyapunov_spectrum", "spectrum_along"),
    "_dynamics": ("DynamicsRecorder", "layer_spectra"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}
__all__ = [
    "BackgroundTracker",
    "CellConfig",
    "DatasetConfig",
    "Drawer",
    "DynamicsRecorder",
    "FLOOR",
    "FlowRecorder",
    "FlowSummary",
    "GroupLr",
    "Key",
    "MlflowTracker",
    "ModelConfig",
    "NullTracker",
    "OutsideSteps",
    "ORDER_FILE",
    "PluginChoice",
    "Progress",
    "RemedyConfig",
    "ResolvedRun",
    "RunConfig",
    "RunResult",
    "STEPS_IN_PAST_FLOOR",
    "Selection",
    "Spectrum",
    "SequenceModel",
    "Source",
    "TARGET",
    "TOTAL",
    "Tracker",
    "TrainConfig",
    "apply_override",
    "build",
    "build_model",
    "describe_device",
    "dotted",
    "evaluate",
    "exponents_along",
    "flatten_state",
    "flow_curve",
    "flow_curves",
    "flow_heatmap",
    "flow_metrics",
    "grad_curve",
    "jacobian_log_singular_values",
    "layer_spectra",
    "log_files",
    "load_run_config",
    "load_yaml",
    "log_singular_values_along",
    "loss_terms",
    "lyapunov_spectrum",
    "make_optimizer",
    "nonfinite",
    "param_groups",
    "parse_run_config",
    "prepare_process",
    "pydantic_errors",
    "pyplot",
    "remedy_label",
    "resolve",
    "resolve_device",
    "run_loop",
    "run_name",
    "running_runs",
    "spectrum_along",
    "state_width",
    "step_jacobian",
    "summarize",
    "summary_line",
    "tags",
    "target_gradients",
    "train",
    "weight_metrics",
]

if TYPE_CHECKING:
    from rnnlab.run._artifacts import remedy_label, run_name, tags
    from rnnlab.run._background import BackgroundTracker
    from rnnlab.run._config import (
        CellConfig,
        DatasetConfig,
        GroupLr,
        ModelConfig,
        PluginChoice,
        RemedyConfig,
        ResolvedRun,
        RunConfig,
        TrainConfig,
        load_run_config,
        parse_run_config,
        pydantic_errors,
        resolve,
    )
    from rnnlab.run._devices import describe_device, resolve_device
    from rnnlab.run._drawing import ORDER_FILE, Drawer, log_files
    from rnnlab.run._dynamics import DynamicsRecorder, layer_spectra
    from rnnlab.run._evaluation import Selection, evaluate, nonfinite, weight_metrics
    from rnnlab.run._figures import FLOOR, TARGET, TOTAL, flow_curves, flow_heatmap, pyplot
    from rnnlab.run._jacobians import (
        flatten_state,
        jacobian_log_singular_values,
        log_singular_values_along,
        state_width,
        step_jacobian,
    )
    from rnnlab.run._lyapunov import Spectrum, exponents_along, lyapunov_spectrum, spectrum_along
    from rnnlab.run._model import SequenceModel, build_model, run_loop
    from rnnlab.run._optim import make_optimizer, param_groups
    from rnnlab.run._outside import OutsideSteps
    from rnnlab.run._probe import (
        STEPS_IN_PAST_FLOOR,
        FlowRecorder,
        FlowSummary,
        flow_curve,
        flow_metrics,
        grad_curve,
        summarize,
        target_gradients,
    )
    from rnnlab.run._result import Progress, RunResult, summary_line
    from rnnlab.run._sources import Key, Source, apply_override, dotted, load_yaml
    from rnnlab.run._tracking import MlflowTracker, NullTracker, Tracker, running_runs
    from rnnlab.run._train import build, loss_terms, prepare_process, train
else:

    def __getattr__(name: str) -> Any:
        module = _WHERE.get(name)
        if module is None:
            raise AttributeError(f"module 'rnnlab.run' has no attribute {name!r}")
        value = getattr(importlib.import_module(f"rnnlab.run.{module}"), name)
        globals()[name] = value
        return value
