"""Everything a sweep report shows, read from the sweep's Optuna study and its MLflow runs."""

from __future__ import annotations

import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnlab._names import (
    FLOW_ARRAYS,
    FLOW_FILE,
    INCOMPATIBLE,
    LOG10_RATIO,
    OUTCOME,
    PARENT,
    RUN_ID,
    SEED,
    SWEEP_FILE,
    TARGET_LOG10_RATIO,
    TRACKING_URI,
    VERSION,
)
from rnnlab.sweep import (
    Range,
    SweepPlan,
    encode,
    label,
    optuna_version,
    outcome_table,
    table_axes,
    unfinished,
)

if TYPE_CHECKING:
    import optuna

History = list[tuple[int, float]]


@dataclass
class TrialData:
    """One finished trial: its settings, outcome and what its run measured."""

    number: int
    labels: dict[str, str]  # categorical setting -> label
    seed: int
    outcome: str
    value: float | None
    run_id: str | None
    flow_steps: np.ndarray | None = None  # probe steps
    flow: np.ndarray | None = None  # ||dL/dh_t||, the total curve: [probe, layer, t]
    target_flow: np.ndarray | None = None  # ||dL_target/dh_t|| (None: a run from before it)
    objective: History = field(default_factory=list)
    ratio: History = field(default_factory=list)  # grad/log10_ratio
    target_ratio: History = field(default_factory=list)  # grad/target/log10_ratio

    def combination(self, axes: list[str]) -> tuple[str, ...]:
        return tuple(self.labels[a] for a in axes)


@dataclass
class ReportData:
    plan: SweepPlan
    study: optuna.Study
    tracking_uri: str
    parent_run_id: str | None
    trials: list[TrialData]
    table: list[dict[str, Any]]
    total: int
    unfinished: int  # trials queued or running
    sweep_file: str
    versions: dict[str, str]

    @property
    def axes(self) -> list[str]:
        return table_axes(self.plan)

    @property
    def running(self) -> bool:
        return self.unfinished > 0 or len(self.trials) < self.total


def _labels(plan: SweepPlan, params: dict[str, Any]) -> dict[str, str]:
    labels = {}
    for key, space in plan.section.space.items():
        if isinstance(space, Range):
            continue
        encoded = [encode(v) for v in space]
        picked = params.get(key)
        labels[key] = label(space[encoded.index(picked)]) if picked in encoded else "?"
    return labels


def _history(client: Any, run_id: str, key: str) -> History:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _flow(
    client: Any, run_id: str, folder: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Probe steps, total curves and target curves (None in runs recorded before rnnlab kept
    them) of a run's gradient_flow.npz; None when it has none."""
    steps, norms, _, target = FLOW_ARRAYS
    try:
        path = client.download_artifacts(run_id, FLOW_FILE, str(folder))
    except Exception:  # no probe was taken (e.g. failed before the first step)
        return None
    with np.load(path) as data:
        if data[norms].size == 0:
            return None
        return data[steps], data[norms], data[target] if target in data.files else None


def versions(plugin_infos: Any) -> dict[str, str]:
    """rnnlab, torch, optuna, mlflow, Python and every plugin distribution's version."""
    import mlflow
    import torch

    found = {
        "rnnlab": VERSION,
        "torch": torch.__version__,
        "optuna": optuna_version(),
        "mlflow": mlflow.__version__,
        "python": platform.python_version(),
    }
    for info in plugin_infos.values():
        if info.distribution and info.distribution != "rnnlab":
            found[f"plugin {info.distribution}"] = str(info.version)
    return found


def collect(
    study: optuna.Study, plan: SweepPlan, tracking_uri: str | None, plugin_infos: Any
) -> ReportData:
    """Read a (finished or running) sweep: trials from Optuna, curves from MLflow."""
    from mlflow import MlflowClient

    uri = tracking_uri or str(study.user_attrs.get(TRACKING_URI) or "") or None
    client = MlflowClient(tracking_uri=uri)
    metric = plan.section.objective.metric
    all_trials = study.get_trials(deepcopy=False)
    finished = [t for t in all_trials if OUTCOME in t.user_attrs]
    trials = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in finished:
            run_id = t.user_attrs.get(RUN_ID)
            data = TrialData(
                t.number,
                _labels(plan, t.params),
                int(t.user_attrs.get(SEED, 0)),
                str(t.user_attrs[OUTCOME]),
                t.value,
                str(run_id) if run_id else None,
            )
            if data.run_id and data.outcome != INCOMPATIBLE:
                flow = _flow(client, data.run_id, Path(tmp) / str(t.number))
                if flow is not None:
                    data.flow_steps, data.flow, data.target_flow = flow
                data.objective = _history(client, data.run_id, metric)
                data.ratio = _history(client, data.run_id, LOG10_RATIO)
                data.target_ratio = _history(client, data.run_id, TARGET_LOG10_RATIO)
            trials.append(data)
        parent = study.user_attrs.get(PARENT)
        sweep_file = plan.definition
        if parent:
            try:
                path = client.download_artifacts(str(parent), SWEEP_FILE, str(Path(tmp) / "p"))
                sweep_file = Path(path).read_text()
            except Exception:  # a sweep started from a definition, not a file
                pass
    return ReportData(
        plan,
        study,
        client.tracking_uri,
        str(parent) if parent else None,
        trials,
        outcome_table(plan, finished),
        plan.total,
        unfinished(study),
        sweep_file,
        versions(plugin_infos),
    )
