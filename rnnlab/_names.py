"""Every name that crosses a process or lands in a store: outcomes, MLflow tags, Optuna trial and
study attributes, metric keys, artifact file names and plugin kinds.

Users' MLflow stores and Optuna studies hold these strings, so their values never change; each is
defined here, once, and imported wherever it is written or read. This module imports nothing but
the standard library, so the CLI, the sweep coordinator and its workers use it without torch.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

VERSION = "0.1.0"
"""rnnlab's version (``rnnlab.__version__``, pyproject's): every run's TAG_VERSION and summary."""

# -- outcomes: how a run or a trial ended (tag OUTCOME, trial attribute OUTCOME) ----------------
COMPLETED, PRUNED, DIVERGED, FAILED, INCOMPATIBLE = (
    "completed",
    "pruned",
    "diverged",
    "failed",
    "incompatible",
)
OUTCOMES = (COMPLETED, PRUNED, DIVERGED, FAILED, INCOMPATIBLE)
"""Every outcome, in the order of the outcome table's columns and the parent run's metrics."""
RUNNING = "running"
"""The OUTCOME tag of a run while it trains."""
QUEUED = "queued"
"""What ``rnnlab.results`` calls a trial waiting in the study for a slot (it has no OUTCOME yet;
a trial that a coordinator took is ``running`` there until it ends)."""
STOPPED = "stopped"
"""The OUTCOME tag of a trial's run that Ctrl-C stopped (the trial runs again on resume)."""

# -- MLflow: run tags ---------------------------------------------------------------------------
OUTCOME = "rnnlab.outcome"
"""Run tag and trial attribute: one of :data:`OUTCOMES` (a run: also RUNNING or STOPPED)."""
SEED = "rnnlab.seed"
"""Run tag and trial attribute: the run's seed."""
TAG_CELL, TAG_DATASET, TAG_REMEDIES = "rnnlab.cell", "rnnlab.dataset", "rnnlab.remedies"
"""The registered names of the run's cell and dataset; its remedies comma-separated, or none."""
TAG_DEVICE, TAG_VERSION, TAG_SOURCE = "rnnlab.device", "rnnlab.version", "rnnlab.source"
"""Where the run trained (``cpu``, ``cuda:0 (<name>)``), rnnlab's version, the config file."""
SELECTION = "rnnlab.selection"
"""Run tag: the rule that chose the weights the test split was evaluated on, the value of
``train.select`` (``final`` or ``best_val``)."""
TAG_SWEEP, TAG_TRIAL, TAG_HOST, TAG_SLOT = (
    "rnnlab.sweep",
    "rnnlab.trial",
    "rnnlab.host",
    "rnnlab.slot",
)
"""A sweep's runs: the study's name, the trial's number, the coordinator's host, the slot."""
TAG_REASON = "rnnlab.reason"
"""Why a trial's run is incompatible, or why the coordinator ended it."""
TAG_ROLE, ROLE_SWEEP, ROLE_TRIAL = "rnnlab.role", "sweep", "trial"
"""The tag that says what a sweep's run is: its parent run (``sweep``) or a trial's child run
(``trial``, every one, trained or not)."""
NO_SLOT = "none"
"""TAG_SLOT of a trial's run that no slot took (an incompatible point)."""
MLFLOW_PARENT = "mlflow.parentRunId"
"""MLflow's own tag that nests a trial's run under the sweep's parent run."""

EXPERIMENT_KIND, CUSTOM_MODEL_DEVELOPMENT = "mlflow.experimentKind", "custom_model_development"
"""MLflow 3's experiment tag and the value that marks a training experiment: its UI then opens
the experiment on its runs, not on the GenAI overview of traces. rnnlab sets it on every
experiment it creates or reuses."""

DEFAULT_UI = "http://127.0.0.1:5000"
"""Where ``rnnlab ui`` and ``mlflow ui`` serve by default."""


def ui_links(ui: str, experiment_id: str, run_id: str | None = None) -> tuple[str, str | None]:
    """The MLflow UI's deep links, on the UI at ``ui``: the experiment's runs page and the run's
    page (None without a run)."""
    runs = f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs"
    return runs, (f"{runs}/{run_id}" if run_id else None)


UI_RECORDS = "rnnlab-ui"
"""Where a running ``rnnlab ui`` says where it serves, for ``rnnlab report``'s row links: one
``<pid>.json`` (``{"url": ..., "tracking_uri": ..., "pid": ...}``) in :func:`ui_records_dir`,
written once the UI answers and removed when it stops."""


def ui_records_dir() -> Path:
    """The folder of :data:`UI_RECORDS`: under the system's temp directory, one per user."""
    uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    return Path(tempfile.gettempdir()) / f"{UI_RECORDS}-{uid}"


NO_REMEDY = "none"
"""TAG_REMEDIES (and the ``remedies`` param) of a run without remedies."""


def run_tags(
    cell: str, dataset: str, remedies: Iterable[str], seed: int, device: str
) -> dict[str, str]:
    """The tags every run starts with (its OUTCOME RUNNING); the one place they are built, for a
    trained run and for the bare run a sweep records for a trial that never trained."""
    return {
        TAG_CELL: cell,
        TAG_DATASET: dataset,
        TAG_REMEDIES: ",".join(remedies) or NO_REMEDY,
        SEED: str(seed),
        OUTCOME: RUNNING,
        TAG_DEVICE: device,
    }


# -- Optuna: trial and study attributes ---------------------------------------------------------
KEY = "rnnlab.key"
"""Trial attribute: the configuration and seed, ``<CONFIG>-s<seed>``; a sweep runs each once."""
CONFIG = "rnnlab.config"
"""Trial attribute: the configuration's key (a hash of its space values), without the seed."""
RUN_ID = "rnnlab.run_id"
"""Trial attribute: the id of the trial's MLflow run."""
OWNER = "rnnlab.owner"
"""Trial attribute: the coordinator that runs the trial, ``host:pid``."""
MESSAGE = "rnnlab.message"
"""Trial attribute: the first line of why the trial failed, diverged or was pruned."""
DUPLICATE_OF = "rnnlab.duplicate_of"
"""Trial attribute: the number of the trial that holds the key this queued copy also had."""
KILLED_BY = "rnnlab.killed_by"
"""Trial attribute: why a trial's worker process died (a signal) mid-trial; the key runs again
(up to ``sweep.kill_retries`` times), so the attribute marks an attempt, not an outcome."""
RATIO_ATTR = "rnnlab.log10_ratio"
"""Trial attribute: the run's last ``grad/log10_ratio`` (for the outcome table)."""
TARGET_RATIO_ATTR = "rnnlab.target_log10_ratio"
"""Trial attribute: the run's last ``grad/target/log10_ratio`` (for the outcome table)."""
LYAPUNOV_ATTR = "rnnlab.lyapunov_max"
"""Trial attribute: the run's final ``dyn/lyapunov_max`` (for the outcome table's lambda max)."""
PARENT = "rnnlab.parent_run_id"
"""Study attribute: the id of the sweep's MLflow parent run."""
TRACKING_URI = "rnnlab.tracking_uri"
"""Study attribute: the MLflow store the sweep writes to."""
DEFINITION = "rnnlab.definition"
"""Study attribute: the resolved sweep file; a resume with another definition is refused."""

# -- metric keys ---------------------------------------------------------------------------------
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
LOSS, ACCURACY = "loss", "accuracy"
VAL_LOSS, VAL_ACCURACY = f"{VAL}/{LOSS}", f"{VAL}/{ACCURACY}"
TRAIN_LOSS = "train/loss"
"""The interval mean of the training batches' loss."""
GLOBAL_NORM = "grad/global_norm"
"""The global gradient norm before any remedy touched the gradients."""
CLIPPED = "grad/clipped"
"""1.0 on a step where a remedy changed the gradients (clipping fired), else 0.0; every run
logs it (:meth:`rnnlab.Remedy.after_backward`)."""
EXTRA_STEPS = "train/extra_steps"
"""The optimisation steps remedies took outside the training loss so far (flossing's preflossing
and interflossing; :meth:`rnnlab.Remedy.before_training`, :meth:`rnnlab.Remedy.between_steps`):
a remedy reports the steps of one call under this key, rnnlab logs the running total, and only
on runs where a remedy took any."""
PARAM_NORM = "grad/param/"
"""Prefix of each parameter's gradient norm on probed steps: ``grad/param/<parameter name>``."""
SPECTRAL_NORM, SPECTRAL_RADIUS = "weights/spectral_norm", "weights/spectral_radius"
"""Of each layer's recurrent weight, with every validation."""
DYN = "dyn/"
"""Prefix of the dynamics of each layer (rnnlab.run._dynamics), measured on a fixed batch of
validation sequences on ``train.dynamics_every``'s schedule; a lower layer K adds ``/layerK``."""
LYAPUNOV_MAX, LYAPUNOV_MEAN, LYAPUNOV_MIN = (
    DYN + "lyapunov_max",
    DYN + "lyapunov_mean",
    DYN + "lyapunov_min",
)
"""The largest, mean and smallest of the layer's k measured Lyapunov exponents (natural log per
time step, batch mean; k = ``train.lyapunov_k``)."""
ISOMETRY_MAX, ISOMETRY_MEAN, ISOMETRY_MIN = (
    DYN + "isometry_max",
    DYN + "isometry_mean",
    DYN + "isometry_min",
)
"""At initialisation only, for a cell with a recurrent weight: the largest, mean and smallest log
singular value of the Jacobian product ds_T/ds_0 over the whole sequence (batch mean; 0 is
dynamical isometry, Chen, Pennington & Schoenholz 2018)."""
DIVERGED_AT = "diverged_at"
"""The number of updates done when the run diverged."""
SWEEP_METRIC, SWEEP_BEST = "sweep/", "sweep/best"
"""The parent run's metrics: ``sweep/<outcome>`` counts and the best objective."""


def layer_key(key: str, layer: int, layers: int) -> str:
    """``key`` for the top layer (the one under the head), ``key/layerK`` for a lower layer K."""
    return key if layer == layers - 1 else f"{key}/layer{layer}"


# -- artifact file names -------------------------------------------------------------------------
CONFIG_FILE = "config.yaml"
"""A run's resolved config, every default filled in (it runs again as it is)."""
FLOW_FILE = "gradient_flow.npz"
"""A run's gradient-flow curves, the arrays :data:`FLOW_ARRAYS`."""
FLOW_ARRAYS = ("steps", "norms", "underflow", "target_norms")
"""The arrays of a run's ``gradient_flow.npz``: probe steps ``[P]``; ||dL/dh_t|| ``[P, layers,
T]``; where it underflowed to 0 ``[P, layers, T]``; ||d(target loss)/dh_t|| ``[P, layers, T]``."""
FLOW_PNG, FLOW_TARGET_PNG = "gradient_flow.png", "gradient_flow_target.png"
"""A run's heatmaps of the total and the target curve."""
FLOW_CURVES_PNG = "gradient_flow_curves.png"
"""A run's first and last total curve."""
DYNAMICS_FILE = "dynamics.npz"
"""A run's measured dynamics, the arrays :data:`DYNAMICS_ARRAYS`."""
DYNAMICS_ARRAYS = ("steps", "exponents", "ftle", "log_det_mean", "k", "width", "isometry")
"""The arrays of a run's ``dynamics.npz``: measured steps ``[M]`` (updates done); each layer's
exponents ``[M, layers, K]`` (descending, NaN past the layer's k); the finite-time exponents of
every QR window ``[M, layers, windows, K]``; the time mean of log|det J_t| ``[M, layers]`` (NaN
where k < W); k and the state width W per layer ``[layers]``; the log singular values of
ds_T/ds_0 at step 0 ``[layers, sequences, W]`` (NaN for a cell without a recurrent weight)."""
LYAPUNOV_PNG = "lyapunov.png"
"""A run's Lyapunov spectra at the first and the last measured step, per layer."""
MODEL_FILE = "model.pt"
"""A run's final weights and resolved config (``torch.save`` of a dict: ``state_dict``,
``config``, ``step``, ``version``); ``rnnlab dynamics RUN_ID`` rebuilds the model from it."""
SUMMARY_FILE = "summary.json"
"""How a run ended, its final metrics and versions."""
TRACEBACK_FILE = "traceback.txt"
"""Why a run failed."""
SWEEP_FILE, SWEEP_RESOLVED = "sweep.yaml", "sweep-resolved.yaml"
"""The parent run's copy of the sweep file, and the definition it resolved to."""
TABLE_MD, TABLE_YAML = "summary.md", "summary.yaml"
"""The outcome table (the parent run's, and the report's markdown)."""
REPORT_FOLDER, REPORT_PAGE = "report", "report.html"
"""Where ``rnnlab report`` logs its files on the parent run, and its page."""
REPORT_FIGURES = (
    "objective_heatmap.png",
    "gradient_flow.png",
    "log10_ratio.png",
    "learning_curves.png",
    "importances.png",
)
"""The report's figures, in the page's order."""
REPORT_SPECTRA, REPORT_LYAPUNOV_SCATTER = "lyapunov_spectra.png", "lyapunov_scatter.png"
"""The report's dynamics figures (where the trials recorded dynamics.npz): the spectra per
combination at init and at the end, and final dyn/lyapunov_max against the target curve's log10
ratio and the objective."""

# -- plugin kinds ---------------------------------------------------------------------------------
KINDS = ("cell", "dataset", "remedy")
"""What a plugin registers; ``rnnlab new-plugin --kind`` takes the same words."""
HOOKS: Mapping[str, str] = {
    "cell": "register_cells",
    "dataset": "register_datasets",
    "remedy": "register_remedies",
}
"""The hook that registers each kind."""
PLURALS: Mapping[str, str] = {"cell": "cells", "dataset": "datasets", "remedy": "remedies"}
"""How ``rnnlab plugins`` (and its JSON) and the error messages name several of a kind."""
BASES: Mapping[str, str] = {"cell": "Cell", "dataset": "Dataset", "remedy": "Remedy"}
"""The class of :mod:`rnnlab` a registered class of each kind must subclass."""
