"""Reading the replication sweeps back: their settings, trials and what each run measured.

:func:`load` opens a sweep's Optuna study and MLflow runs with rnnlab's own reading code
(:func:`rnnlab.report.collect`); :func:`planned` reads a profile file without running it.
tests/test_replications.py reads its sweeps with :func:`load` (through docs/make_results.py).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab._names import LOG10_RATIO, SELECTION, TARGET_LOG10_RATIO, TEST

ROOT = Path(__file__).resolve().parents[2]
PROFILES = "experiments/replications"
STEMS = (
    "adding",
    "adding-relu",
    "copy",
    "digits",
    "clipping",
    "gradflow",
    "depth",
    "flossing",
    "modern",
)
ALIASES = {"T": "dataset.seq_len", "layers": "model.layers", "lr": "train.lr"}


@dataclass
class Trial:
    """One finished trial: its settings, outcome and what its run measured."""

    labels: dict[str, str]  # space key -> label of the value, e.g. {"cell": "lstm"}
    seed: int
    outcome: str
    metrics: dict[str, float]  # the last value of every metric of the run
    flow: np.ndarray | None  # ||dL/dh_t||, [probe, layer, t]; probe 0 is at initialisation
    first_ratio: float | None  # log10 ||dL/dh_1|| / ||dL/dh_T|| at the first probe
    seconds: float  # the run's wall time
    history: list[tuple[int, float]] = field(default_factory=list)  # (step, objective)
    # the target curve ||dL_target/dh_t||, L_target the loss of the task's target steps alone
    # (rnnlab/run/_probe.py); None / absent in runs recorded before rnnlab measured it
    target_flow: np.ndarray | None = None
    first_target_ratio: float | None = None  # its log10 ratio at the first probe
    selection: str = ""  # the rule that chose the weights the test split saw ("": no test)
    params: dict[str, str] = field(default_factory=dict)  # the run's MLflow params (resolved)

    def get(self, key: str) -> str:
        return self.labels.get(ALIASES.get(key, key), "")

    @property
    def loss(self) -> float:
        return self.metrics.get("val/loss", math.nan)

    @property
    def ratio(self) -> float:
        """log10 ||dL/dh_1|| / ||dL/dh_T|| at the last probe (top layer), L the whole loss."""
        return self.metrics.get(LOG10_RATIO, math.nan)

    @property
    def target_ratio(self) -> float:
        """log10 ||dL_target/dh_1|| / ||dL_target/dh_T|| at the last probe (top layer), L_target
        the loss of the task's target steps alone: copy's recall steps, chars' last step; the
        same as :attr:`ratio` on a last-step task. NaN for a run from before it was measured."""
        return self.metrics.get(TARGET_LOG10_RATIO, math.nan)

    def test(self, what: str = "loss") -> float:
        """``test/<what>`` of a completed run (the test split, once, on the weights its
        :attr:`selection` chose); NaN for a run from before rnnlab evaluated it."""
        return self.metrics.get(f"{TEST}/{what}", math.nan)


@dataclass
class Sweep:
    """A sweep read back from its stores: its base config and finished trials."""

    name: str
    config: dict[str, Any]  # the base run config, every default filled in
    seeds: list[int]
    space: dict[str, list[str]]  # space key -> labels of its values, in the file's order
    trials: list[Trial]
    total: int
    wall: float = math.nan  # the sweep's own wall time (its parent run), seconds

    def pick(self, **want: str) -> list[Trial]:
        """Trials whose labels match, e.g. ``pick(cell="lstm", T="100")``."""
        return [t for t in self.trials if all(t.get(k) == v for k, v in want.items())]

    def values(self, key: str) -> list[str]:
        return self.space.get(ALIASES.get(key, key), [])

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.trials)


@functools.cache
def plugin_manager() -> Any:
    """rnnlab's plugin manager with the installed plugins (built once)."""
    from rnnlab.plugins import make_plugin_manager

    return make_plugin_manager(load=None, strict=False, trace=False)


def load(name: str, storage: str, tracking_uri: str | None = None) -> Sweep | None:
    """The newest study of sweep ``name`` in ``storage`` and its MLflow runs; None if absent."""
    import optuna
    from mlflow import MlflowClient

    from rnnlab.errors import ConfigError
    from rnnlab.report import collect
    from rnnlab.sweep import label, open_sweep

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    plugins = plugin_manager()
    try:
        study, plan = open_sweep(name, storage, plugins.registry())
    except ConfigError:
        return None
    data = collect(study, plan, tracking_uri, plugins.infos)
    client = MlflowClient(data.tracking_uri)
    trials = []
    for t in data.trials:
        metrics: dict[str, float] = {}
        params: dict[str, str] = {}
        seconds, selection = 0.0, ""
        if t.run_id:
            run = client.get_run(t.run_id)
            metrics = dict(run.data.metrics)
            params = dict(run.data.params)  # e.g. remedy.residual.step, the value the run used
            if f"{TEST}/loss" in metrics:  # the rule that chose the weights it tested
                selection = str(run.data.tags.get(SELECTION, ""))
            if run.info.end_time and run.info.start_time:
                seconds = (run.info.end_time - run.info.start_time) / 1000
        first = t.ratio[0][1] if t.ratio else None
        trial = Trial(t.labels, t.seed, t.outcome, metrics, t.flow, first, seconds, t.objective)
        trial.target_flow = t.target_flow
        trial.first_target_ratio = t.target_ratio[0][1] if t.target_ratio else None
        trial.selection = selection
        trial.params = params
        trials.append(trial)
    space = {
        k: [label(v) for v in vs] for k, vs in plan.section.space.items() if isinstance(vs, list)
    }
    wall = math.nan
    if data.parent_run_id:
        info = client.get_run(data.parent_run_id).info
        if info.end_time and info.start_time:
            wall = (info.end_time - info.start_time) / 1000
    return Sweep(
        study.study_name,
        plan.base.as_dict(),
        list(plan.section.seeds),
        space,
        trials,
        plan.total,
        wall,
    )


def planned(stem: str, folder: str = PROFILES) -> Sweep:
    """A profile file's settings, without running it (for the paper-sized profiles)."""
    from rnnlab.sweep import label, load_sweep

    plan = load_sweep(ROOT / folder / f"{stem}.yaml", plugin_manager().registry())
    space = {
        k: [label(v) for v in vs] for k, vs in plan.section.space.items() if isinstance(vs, list)
    }
    return Sweep(plan.name, plan.base.as_dict(), list(plan.section.seeds), space, [], plan.total)
