"""A sweep as data: ``rnnlab.results`` (one DataFrame row per trial) and ``rnnlab.flow`` (a run's
gradient-flow arrays), for notebooks and scripts, without Optuna's or MLflow's API.

Both read the same stores as ``rnnlab report``; the rows come from
:func:`rnnlab.sweep.trial_records`, which the outcome table is built on too, so the DataFrame and
the table cannot disagree about a trial (tests/test_results.py checks it on a real sweep).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnlab._names import FLOW_FILE, TAG_DEVICE, TAG_HOST, TAG_SWEEP, TRACKING_URI
from rnnlab.errors import ConfigError
from rnnlab.report._artifacts import artifact_file
from rnnlab.sweep import SweepPlan, TrialRecord, default_storage, open_sweep, trial_records

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run

PAGE = 1000  # runs per search_runs call


@dataclass
class SweepRecords:
    """A sweep read once: its study, plan, the trials' records and their MLflow runs."""

    study: optuna.Study
    plan: SweepPlan
    tracking_uri: str
    records: list[TrialRecord]
    runs: dict[str, Run]  # run id -> the run (final metrics, tags, times)


def client_for(study: optuna.Study, tracking_uri: str | None) -> MlflowClient:
    """The MLflow client on the store the sweep recorded to (``tracking_uri`` overrides it)."""
    from mlflow import MlflowClient

    uri = tracking_uri or str(study.user_attrs.get(TRACKING_URI) or "") or None
    return MlflowClient(tracking_uri=uri)


def search_sweep_runs(
    client: MlflowClient, experiment: str, study_name: str, run_ids: set[str]
) -> dict[str, Run]:
    """Every run of ``run_ids``, read in pages of :data:`PAGE` by the sweep's tag (one call per
    page, not one per run); a run the tag does not find (moved, renamed) is read by its id."""
    from mlflow.exceptions import MlflowException

    runs: dict[str, Run] = {}
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        quoted = study_name.replace("'", "\\'")
        token = None
        while True:
            page = client.search_runs(
                [found.experiment_id],
                filter_string=f"tags.`{TAG_SWEEP}` = '{quoted}'",
                max_results=PAGE,
                page_token=token,
            )
            runs.update((r.info.run_id, r) for r in page if r.info.run_id in run_ids)
            token = page.token
            if not token:
                break
    for run_id in run_ids - set(runs):
        try:
            runs[run_id] = client.get_run(run_id)
        except MlflowException:  # deleted from the store: the row keeps what Optuna knows
            continue
    return runs


def read_sweep(
    study: optuna.Study, plan: SweepPlan, tracking_uri: str | None = None
) -> SweepRecords:
    """Every trial's record and its run (for :func:`results` and ``rnnlab report``)."""
    records = trial_records(plan, study.get_trials(deepcopy=False))
    client = client_for(study, tracking_uri)
    ids = {r.run_id for r in records if r.run_id}
    runs = search_sweep_runs(client, plan.name, study.study_name, ids) if ids else {}
    return SweepRecords(study, plan, client.tracking_uri, records, runs)


def frame(read: SweepRecords) -> pd.DataFrame:
    """The DataFrame of :func:`results` from a read sweep."""
    import pandas as pd

    metrics = sorted({k for run in read.runs.values() for k in run.data.metrics})
    rows = []
    for record in read.records:
        run = read.runs.get(record.run_id or "")
        row: dict[str, Any] = {"trial": record.number, "key": record.key, **record.values}
        row.update(seed=record.seed, outcome=record.outcome, objective=record.objective)
        final = run.data.metrics if run is not None else {}
        row.update({name: final.get(name, np.nan) for name in metrics})
        seconds = np.nan
        if run is not None and run.info.end_time and run.info.start_time:
            seconds = (run.info.end_time - run.info.start_time) / 1000.0
        tags = run.data.tags if run is not None else {}
        row.update(
            run_id=record.run_id,
            seconds=seconds,
            device=tags.get(TAG_DEVICE),
            host=tags.get(TAG_HOST),
        )
        rows.append(row)
    columns = ["trial", "key", *read.plan.section.space, "seed", "outcome", "objective"]
    columns += [*metrics, "run_id", "seconds", "device", "host"]
    table = pd.DataFrame(rows, columns=columns)
    table["objective"] = table["objective"].astype(float)
    return table


def results(
    sweep: str | Path, *, storage: str | None = None, tracking_uri: str | None = None
) -> pd.DataFrame:
    """A sweep's trials as a pandas DataFrame, one row per trial (finished, stopped, running or
    queued).

    Args:
        sweep: the sweep file, or the sweep's name (its newest study: ``NAME``, ``NAME#2`` after
            ``--fresh``; a study name such as ``vanishing#2`` picks that one).
        storage: the Optuna storage (default: ``./rnnlab-optuna.journal``, as ``rnnlab sweep``).
        tracking_uri: the MLflow store (default: the one the sweep recorded to).

    Columns: ``trial`` (Optuna's number), ``key`` (configuration and seed), one column per
    setting of the sweep's space (``cell``, ``remedies``, ``dataset.seq_len``, ...: a listed
    scalar as it is, anything else as the outcome table's label), ``seed``, ``outcome``
    (``completed``, ``pruned``, ``diverged``, ``failed``, ``incompatible``; ``running`` /
    ``queued`` while Optuna has it RUNNING / WAITING; ``stopped`` for an attempt that ended
    without an outcome, whose key runs again as another trial: docs/notebook.md),
    ``objective`` (the final objective of a completed trial, else
    NaN), every final metric its run logged (``val/loss``, ``test/...``, ``grad/...``,
    ``dyn/...``: NaN where a run has none), ``run_id``, ``seconds`` (the run's wall time),
    ``device`` and ``host``.

    Example:
        >>> df = rnnlab.results("experiments/vanishing.yaml")  # doctest: +SKIP
        >>> df.groupby(["cell", "remedies"]).objective.mean()  # doctest: +SKIP
    """
    study, plan = open_results(str(sweep), storage)
    return frame(read_sweep(study, plan, tracking_uri))


def open_results(target: str, storage: str | None) -> tuple[optuna.Study, SweepPlan]:
    """The sweep ``target`` names (a file or a name) in ``storage``, with the installed plugins."""
    from rnnlab.plugins import make_plugin_manager

    registry = make_plugin_manager().registry()
    return open_sweep(target, storage or default_storage(), registry)


def flow(run_id: str, *, tracking_uri: str | None = None) -> dict[str, np.ndarray]:
    """A run's gradient-flow arrays, read from its ``gradient_flow.npz`` artifact.

    Keys (those the file holds): ``steps`` (probe steps ``[P]``), ``norms`` (||dL/dh_t||,
    ``[P, layers, T]``), ``underflow`` (where that underflowed to 0) and ``target_norms``
    (||d(target loss)/dh_t||). ``tracking_uri``: the MLflow store (default: MLflow's, i.e.
    ``$MLFLOW_TRACKING_URI`` or ``./mlflow.db``)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise ConfigError(
            f"no run {run_id!r} in the MLflow store {client.tracking_uri}: give the run id of "
            "a trial (rnnlab.results(...).run_id) and tracking_uri= if the sweep used another "
            "store"
        ) from exc
    with tempfile.TemporaryDirectory() as folder:
        path = artifact_file(client, run, run_id, FLOW_FILE, Path(folder))
        if path is None:
            raise ConfigError(
                f"run {run_id!r} has no {FLOW_FILE}: it took no gradient probe (it failed or "
                "was incompatible before its first step, or train.probe_every is beyond "
                "train.steps)"
            )
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
