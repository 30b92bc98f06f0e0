"""Everything a sweep report shows, read from the sweep's Optuna study and its MLflow runs."""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnlab._names import (
    DYNAMICS_ARRAYS,
    DYNAMICS_FILE,
    FLOW_ARRAYS,
    FLOW_FILE,
    INCOMPATIBLE,
    LOG10_RATIO,
    PARENT,
    SWEEP_FILE,
    TARGET_LOG10_RATIO,
    VERSION,
)
from rnnlab.report._artifacts import artifact_file
from rnnlab.report._histories import History, bulk_reader, histories, history
from rnnlab.report._results import client_for, read_sweep
from rnnlab.sweep import (
    SweepPlan,
    group_records,
    optuna_version,
    table_axes,
    unfinished,
)

if TYPE_CHECKING:
    import optuna


@dataclass
class Spectra:
    """The top layer's Lyapunov exponents of one trial at its first and its last measured step
    (its ``dynamics.npz``, rnnlab.run._dynamics; the report's dynamics figures draw them)."""

    first: np.ndarray
    last: np.ndarray
    last_step: int


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
    run: Any = None  # its MLflow run (final metrics, tags), when the store has it
    spectra: Spectra | None = None  # None: its run recorded no dynamics

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


def _flow(
    client: Any, run: Any, run_id: str, folder: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Probe steps, total curves and target curves (None in runs recorded before rnnlab kept
    them) of a run's gradient_flow.npz; None when it has none (no probe was taken, e.g. it
    failed before the first step)."""
    steps, norms, _, target = FLOW_ARRAYS
    path = artifact_file(client, run, run_id, FLOW_FILE, folder)
    if path is None:
        return None
    with np.load(path) as data:
        if data[norms].size == 0:
            return None
        return data[steps], data[norms], data[target] if target in data.files else None


def _spectra(client: Any, run: Any, run_id: str, folder: Path) -> Spectra | None:
    """The run's :class:`Spectra`, from its dynamics.npz; None when it has none (dynamics off,
    or a run from before them)."""
    steps, exponents = DYNAMICS_ARRAYS[0], DYNAMICS_ARRAYS[1]
    path = artifact_file(client, run, run_id, DYNAMICS_FILE, folder)
    if path is None:
        return None
    with np.load(path) as data:
        values, measured = data[exponents], data[steps]
    if values.shape[0] == 0:
        return None
    top = values[:, -1, :]
    first, last = top[0][np.isfinite(top[0])], top[-1][np.isfinite(top[-1])]
    return Spectra(first, last, int(measured[-1]))


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


READERS = 8
"""Threads that read the trials' artifacts (and, from a store without bulk reads, their
histories) from MLflow at once (issue 21: one by one, the flagship's 96 runs took most of the
report's 39 s)."""

Progress = Callable[[int, int], None]
"""Told ``(read, total)`` after each trial's curves are read."""


def _read_trial(
    client: Any,
    data: TrialData,
    keys: tuple[str, str, str],
    folder: Path,
    read: dict[tuple[str, str], History] | None,
) -> None:
    """A trained trial's curves: its gradient_flow.npz, its dynamics.npz and the histories of
    ``keys`` (objective, total and target log10 ratio), taken from ``read`` (read in bulk) or,
    when that is None, read here."""
    run_id = str(data.run_id)
    flow = _flow(client, data.run, run_id, folder)
    if flow is not None:
        data.flow_steps, data.flow, data.target_flow = flow
    data.spectra = _spectra(client, data.run, run_id, folder)
    if read is None:
        read = {(run_id, k): history(client, run_id, k) for k in keys}
    data.objective, data.ratio, data.target_ratio = (read[run_id, k] for k in keys)


def collect(
    study: optuna.Study,
    plan: SweepPlan,
    tracking_uri: str | None,
    plugin_infos: Any,
    progress: Progress | None = None,
) -> ReportData:
    """Read a (finished or running) sweep: trials from Optuna (:func:`rnnlab.report.read_sweep`,
    as ``rnnlab.results`` reads them), their runs in pages of one search, their histories in
    bulk (:func:`rnnlab.report._histories.histories`: one query per key where the store allows),
    and their artifacts by :data:`READERS` threads, telling ``progress`` how far it got."""
    from concurrent.futures import ThreadPoolExecutor

    read = read_sweep(study, plan, tracking_uri)
    client = client_for(study, tracking_uri)
    metric = plan.section.objective.metric
    trials = [
        TrialData(
            r.number,
            r.labels,
            r.seed or 0,
            r.outcome,
            r.value,
            r.run_id,
            run=read.runs.get(r.run_id or ""),
        )
        for r in read.records
        if r.finished
    ]
    todo = [t for t in trials if t.run_id and t.outcome != INCOMPATIBLE]
    keys = (metric, LOG10_RATIO, TARGET_LOG10_RATIO)
    bulk = None
    if bulk_reader(client) is not None:
        bulk = histories(client, [str(t.run_id) for t in todo], keys)
    with tempfile.TemporaryDirectory() as tmp:
        with ThreadPoolExecutor(READERS) as pool:
            jobs = [
                pool.submit(_read_trial, client, t, keys, Path(tmp) / str(t.number), bulk)
                for t in todo
            ]
            for done, job in enumerate(jobs, 1):
                job.result()
                if progress is not None:
                    progress(done, len(jobs))
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
        group_records(plan, read.records),
        plan.total,
        unfinished(study),
        sweep_file,
        versions(plugin_infos),
    )
