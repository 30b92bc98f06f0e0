"""The coordinator's side of a sweep trial, for benchmark 6 (tracking): a spawned process that
writes what a worker's ``PipeTracker`` sends, as rnnlab.sweep's coordinator does.

It handles the tracker's messages with the coordinator's own parts: one ``MlflowTracker`` per
trial and ``PendingFigures`` (the Drawer process) for the PNGs; a pruning report is answered
"go on". Only the coordinator's Optuna bookkeeping is left out, so the benchmark's trial thread
pays exactly what a sweep's slot pays for tracking: the pipe, the artifact files, the copy.
"""

from __future__ import annotations

from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any


def serve(conn: Connection, uri: str) -> None:
    """Until ``None`` arrives (or EOF): apply the messages; the figures drain at the end."""
    from rnnlab.run import MlflowTracker
    from rnnlab.sweep._figurework import PendingFigures
    from rnnlab.sweep._messages import Artifacts, Finished, Metrics, Report, Started, Tags

    figures = PendingFigures()
    tracker: Any = None
    while True:
        drawn = figures.fileno()
        ready = wait([conn, *([drawn] if drawn is not None else [])])
        if drawn is not None and drawn in ready:
            figures.serve()
        if conn not in ready:
            continue
        try:
            message = conn.recv()
        except EOFError:
            break
        match message:
            case None:
                break
            case Started(experiment, run_name, tags, params):
                tracker = MlflowTracker(uri)
                tracker.start(experiment, run_name, tags, params)
            case Metrics(points):
                for metrics, step in points:
                    tracker.log_metrics(metrics, step)
            case Tags(tags):
                tracker.set_tags(tags)
            case Artifacts(folder):
                figures.submit(tracker, Path(folder))
            case Report():
                conn.send(False)
            case Finished(status):  # the PNGs follow into the ended run, as in a sweep
                tracker.finish(status)
    figures.drain()
