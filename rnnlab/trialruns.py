"""The MLflow child runs a sweep coordinator writes itself, not on a worker's report.

A worker reports its run's start, metrics and end (rnnlab.sweep forwards them). The coordinator
alone opens a bare run for a trial that never reached ``train()`` (an incompatible point, a set-up
failure, a crashed worker), fails a run with its traceback, and closes runs that a stopped,
taken-over or dead coordinator left open.
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnlab.study import OWNER, RUN_ID
from rnnlab.tracking import MlflowTracker, running_runs

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from rnnlab.study import Task
    from rnnlab.workers import Slot


def trial_tags(study_name: str, task: Task, slot: Slot | None) -> dict[str, str]:
    """The tags that tie a child run to its sweep, trial, machine and slot."""
    tags = {
        "rnnlab.sweep": study_name,
        "rnnlab.trial": str(task.trial.number),
        "rnnlab.host": socket.gethostname(),
    }
    if slot is not None:
        tags["rnnlab.slot"] = slot.label()
    return tags


def _remedy_names(data: dict[str, Any]) -> str:
    items = data.get("remedies") or []
    items = [items] if isinstance(items, str | dict) else items
    return ",".join(str(r["name"] if isinstance(r, dict) else r) for r in items) or "none"


def start_bare_run(
    tracker: MlflowTracker,
    experiment: str,
    study_name: str,
    task: Task,
    label: str,
    slot: Slot | None,
) -> None:
    """Open ``task``'s run with the tags ``train()`` would have given it, from the raw point."""
    data = task.point.data
    tags = {
        "rnnlab.cell": str(data["cell"]["name"]),
        "rnnlab.dataset": str(data["dataset"]["name"]),
        "rnnlab.remedies": _remedy_names(data),
        "rnnlab.seed": str(task.seed),
        "rnnlab.outcome": "running",
        "rnnlab.device": slot.label() if slot else "none",
        **trial_tags(study_name, task, slot),
    }
    params = {k: str(v) for k, v in task.point.labels().items()}
    tracker.start(experiment, f"trial {task.trial.number}: {label}", tags, params)


def fail_run(tracker: MlflowTracker, message: str) -> None:
    """End the run FAILED with ``message`` as its traceback.txt artifact."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "traceback.txt").write_text(message)
        tracker.log_artifacts(Path(folder))
    tracker.set_tags({"rnnlab.outcome": "failed"})
    tracker.finish("FAILED")


def close_run(
    tracking_uri: str | None, run_id: Any, outcome: str, status: str, reason: str = ""
) -> None:
    """End an open run by its id with an outcome (and why); nothing without an id."""
    if not run_id:
        return
    tracker = MlflowTracker(tracking_uri)
    tracker.attach(str(run_id))
    tags = {"rnnlab.outcome": outcome}
    if reason:
        tags["rnnlab.reason"] = reason
    tracker.set_tags(tags)
    tracker.finish(status)


def close_stale(
    tracking_uri: str | None, experiment: str, study_name: str, stale: list[FrozenTrial]
) -> None:
    """Fail the runs of trials whose coordinator is gone (their keys run again)."""
    for trial in stale:
        owner = trial.user_attrs.get(OWNER, "?")
        reason = f"its coordinator {owner} stopped (killed or lost); the trial runs again"
        run_ids = [trial.user_attrs[RUN_ID]] if RUN_ID in trial.user_attrs else []
        if not run_ids:  # killed between creating the run and noting its id on the trial
            tags = {"rnnlab.sweep": study_name, "rnnlab.trial": str(trial.number)}
            run_ids = running_runs(tracking_uri, experiment, tags)
        for run_id in run_ids:
            close_run(tracking_uri, run_id, "failed", "FAILED", reason)
