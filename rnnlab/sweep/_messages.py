"""What the coordinator and a worker process say to each other over the worker's pipe.

Each message is a frozen dataclass, pickled by ``multiprocessing``; the coordinator matches on
the class (rnnlab.sweep._coordinator) and so does the worker (rnnlab.sweep._child). One message
waits for an answer, a plain bool: :class:`Report` (True: prune the trial now).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# -- coordinator -> worker ----------------------------------------------------------------------


@dataclass(frozen=True)
class RunTrial:
    """Train this trial: its resolved config with the trial's seed (``ResolvedRun.as_dict``)."""

    config: dict[str, Any]


@dataclass(frozen=True)
class Stop:
    """Exit: the sweep is over or stopping."""


ToWorker = RunTrial | Stop

# -- worker -> coordinator: the trial's run, as a Tracker would record it ----------------------


@dataclass(frozen=True)
class Started:
    """``Tracker.start``: open the trial's MLflow run."""

    experiment: str
    run_name: str
    tags: dict[str, str]
    params: dict[str, str]


@dataclass(frozen=True)
class Metrics:
    """``Tracker.log_metrics``, buffered: ``(metrics, step)`` pairs in the order they came."""

    points: list[tuple[dict[str, float], int]]


@dataclass(frozen=True)
class Tags:
    """``Tracker.set_tags``."""

    tags: dict[str, str]


@dataclass(frozen=True)
class Artifacts:
    """``Tracker.log_artifacts``: a copy of the files, ``folder``, now the coordinator's (it
    draws the ordered figures, logs and deletes it: rnnlab.sweep._figurework); no answer."""

    folder: str


@dataclass(frozen=True)
class Report:
    """An evaluation for the pruner (``should_stop``); answered True to prune the trial."""

    step: int
    scores: dict[str, float]


@dataclass(frozen=True)
class Finished:
    """``Tracker.finish``: end the run with this MLflow status."""

    status: str


@dataclass(frozen=True)
class Result:
    """The trial is over (every outcome, a set-up that failed before the run included)."""

    outcome: str
    metrics: dict[str, float]
    message: str


FromWorker = Started | Metrics | Tags | Artifacts | Report | Finished | Result
