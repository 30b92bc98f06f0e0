"""The MLflow child runs a sweep coordinator writes itself, not on a worker's report.

A worker reports its run's start, metrics and end (the coordinator forwards them). The coordinator
alone opens a bare run for a trial that never reached ``train()`` (an incompatible point, a set-up
failure, a crashed worker), fails a run with its traceback, and closes runs that a stopped,
taken-over or dead coordinator left open.
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnlab._names import (
    FAILED,
    MESSAGE,
    NO_SLOT,
    OUTCOME,
    OWNER,
    ROLE_TRIAL,
    RUN_ID,
    STOPPED,
    TAG_HOST,
    TAG_REASON,
    TAG_ROLE,
    TAG_SLOT,
    TAG_SOURCE,
    TAG_SWEEP,
    TAG_TRIAL,
    TAG_VERSION,
    TRACEBACK_FILE,
    VERSION,
    run_tags,
)
from rnnlab.errors import ArtifactError
from rnnlab.run import MlflowTracker, running_runs

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from rnnlab.sweep._study import Task
    from rnnlab.sweep._workers import Slot


def trial_tags(study_name: str, task: Task, slot: Slot | None, source: str) -> dict[str, str]:
    """The tags that tie a child run to its sweep, trial, machine and slot, on every child run
    (trained or not): ``rnnlab.role=trial``, the sweep file as its source, rnnlab's version."""
    return {
        TAG_ROLE: ROLE_TRIAL,
        TAG_SWEEP: study_name,
        TAG_TRIAL: str(task.trial.number),
        TAG_HOST: socket.gethostname(),
        TAG_SLOT: slot.label() if slot is not None else NO_SLOT,
        TAG_SOURCE: source,  # the sweep file: a worker's run config has no file of its own
        TAG_VERSION: VERSION,
    }


def trial_run_name(task: Task, label: str) -> str:
    """Every child run's name, trained or not: ``trial 3: cell.name=lstm remedies=clip s0``."""
    return f"trial {task.trial.number}: {label}"


def _remedy_names(data: dict[str, Any]) -> list[str]:
    items = data.get("remedies") or []
    items = [items] if isinstance(items, str | dict) else items
    return [str(r["name"] if isinstance(r, dict) else r) for r in items]


def start_bare_run(
    tracker: MlflowTracker,
    experiment: str,
    study_name: str,
    task: Task,
    label: str,
    slot: Slot | None,
    source: str,
) -> None:
    """Open ``task``'s run with the tags ``train()`` would have given it, from the raw point."""
    data = task.point.data
    cell, dataset = str(data["cell"]["name"]), str(data["dataset"]["name"])
    device = slot.label() if slot else "none"  # never trained: the slot it was given, if any
    tags = {
        **run_tags(cell, dataset, _remedy_names(data), task.seed, device),
        **trial_tags(study_name, task, slot, source),
    }
    params = {k: str(v) for k, v in task.point.labels().items()}
    tracker.start(experiment, trial_run_name(task, label), tags, params)


def fail_run(tracker: MlflowTracker, message: str) -> None:
    """End the run FAILED with ``message`` as its traceback.txt artifact.

    When the artifact location cannot take the traceback, the run still ends FAILED, its
    ``rnnlab.reason`` saying why, and the ArtifactError propagates (the coordinator stops)."""
    try:
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / TRACEBACK_FILE).write_text(message)
            tracker.log_artifacts(Path(folder))
    except ArtifactError as exc:
        tracker.set_tags({OUTCOME: FAILED, TAG_REASON: f"{exc}"[:5000]})
        tracker.finish("FAILED")
        raise
    tracker.set_tags({OUTCOME: FAILED})
    tracker.finish("FAILED")


def close_run(
    tracking_uri: str | None, run_id: Any, outcome: str, status: str, reason: str = ""
) -> None:
    """End an open run by its id with an outcome (and why); nothing without an id."""
    if not run_id:
        return
    tracker = MlflowTracker(tracking_uri)
    tracker.attach(str(run_id))
    tags = {OUTCOME: outcome}
    if reason:
        tags[TAG_REASON] = reason
    tracker.set_tags(tags)
    tracker.finish(status)


def close_abandoned(
    tracking_uri: str | None, experiment: str, study_name: str, attempts: list[FrozenTrial]
) -> list[str]:
    """End the runs that failed ``attempts`` left RUNNING: a sweep stopped while its tracking
    server was away cannot tell MLflow (rnnlab.sweep._coordinator's ``_abandon``), so the next
    start, which reaches it, ends them KILLED (``stopped``, as ``rnnlab.results`` labels such
    attempts) with the attempt's message as the reason. One search of the sweep's RUNNING runs,
    only when there are such attempts; the runs of attempts that were ended are left alone.
    Returns the ids it ended."""
    by_run = {str(t.user_attrs[RUN_ID]): t for t in attempts if RUN_ID in t.user_attrs}
    if not by_run:
        return []
    running = running_runs(tracking_uri, experiment, {TAG_SWEEP: study_name})
    ended = [run_id for run_id in running if run_id in by_run]
    for run_id in ended:
        why = str(by_run[run_id].user_attrs.get(MESSAGE, "its attempt stopped"))
        reason = f"{why}; ended by the sweep's next start, the trial ran again"
        close_run(tracking_uri, run_id, STOPPED, "KILLED", reason[:5000])
    return ended


def close_stale(
    tracking_uri: str | None, experiment: str, study_name: str, stale: list[FrozenTrial]
) -> None:
    """Fail the runs of trials whose coordinator is gone (their keys run again)."""
    for trial in stale:
        owner = trial.user_attrs.get(OWNER, "?")
        reason = f"its coordinator {owner} stopped (killed or lost); the trial runs again"
        run_ids = [trial.user_attrs[RUN_ID]] if RUN_ID in trial.user_attrs else []
        if not run_ids:  # killed between creating the run and noting its id on the trial
            tags = {TAG_SWEEP: study_name, TAG_TRIAL: str(trial.number)}
            run_ids = running_runs(tracking_uri, experiment, tags)
        for run_id in run_ids:
            close_run(tracking_uri, run_id, FAILED, "FAILED", reason)
