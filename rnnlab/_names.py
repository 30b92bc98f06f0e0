"""Names that cross a process or land in a store (metric keys, tags, trial attributes).

Users' MLflow stores and Optuna studies hold these strings, so their values never change. The
names issue 14 added are defined here, once, and imported wherever they are written or read; this
module imports nothing, so the sweep coordinator and the CLI can use it without loading torch.
"""

from __future__ import annotations

FLOW = "grad/"
"""Prefix of the summaries of the total-loss curve ||dL/dh_t||: ``grad/log10_ratio``, ..."""
TARGET_FLOW = "grad/target/"
"""Prefix of the same summaries of the target curve ||d(target loss)/dh_t||, where the target
loss is the loss of the task's target steps alone (:meth:`rnnlab.base.Dataset.target_loss`)."""
FLOW_SUMMARIES = ("log10_ratio", "decay_rate", "steps_in_past", "underflow")
"""The summaries of a curve, after the prefix; a lower layer K adds the suffix ``/layerK``."""
LOG10_RATIO = FLOW + "log10_ratio"
TARGET_LOG10_RATIO = TARGET_FLOW + "log10_ratio"

VAL, TEST = "val", "test"
"""The held-out splits: metrics ``<split>/loss``, ``<split>/accuracy`` and the task's derived
ones (``<split>/bpc``, ``<split>/nrmse``). ``test`` is evaluated once, at the end of a completed
run, on the weights that ``train.select`` chose."""

SELECTION = "rnnlab.selection"
"""Run tag: the rule that chose the weights the test split was evaluated on, the value of
``train.select`` (``final`` or ``best_val``)."""

TARGET_RATIO_ATTR = "rnnlab.target_log10_ratio"
"""Optuna trial attribute: the run's last ``grad/target/log10_ratio`` (for the outcome table)."""

FLOW_ARRAYS = ("steps", "norms", "underflow", "target_norms")
"""The arrays of a run's ``gradient_flow.npz``: probe steps ``[P]``; ||dL/dh_t|| ``[P, layers,
T]``; where it underflowed to 0 ``[P, layers, T]``; ||d(target loss)/dh_t|| ``[P, layers, T]``."""


def layer_key(key: str, layer: int, layers: int) -> str:
    """``key`` for the top layer (the one under the head), ``key/layerK`` for a lower layer K."""
    return key if layer == layers - 1 else f"{key}/layer{layer}"
