"""A sweep's worker process: it trains one trial at a time and records nothing itself.

Started by :class:`rnnlab.sweep._workers.Worker` with the ``spawn`` method, so that
CUDA_VISIBLE_DEVICES and the torch thread count are set before torch loads. Everything a run
would record goes to the coordinator through the pipe (:class:`PipeTracker`, the messages of
rnnlab.sweep._messages): the coordinator is the only process that writes to MLflow and Optuna,
so their sqlite/journal stores never see concurrent writers. This module imports neither optuna
nor mlflow.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import signal
import tempfile
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from rnnlab._names import FAILED
from rnnlab.sweep._messages import (
    Artifacts,
    Finished,
    Metrics,
    Report,
    Result,
    RunTrial,
    Started,
    Stop,
    Tags,
)

FLUSH_EVERY = 500  # metric values per message to the coordinator


class PipeTracker:
    """The worker's Tracker: forwards every call to the coordinator, which writes to MLflow."""

    draws_figures = True  # the coordinator has them drawn off the slot (sweep/_figurework.py)

    def __init__(self, conn: Connection, scratch: str | None = None) -> None:
        self.conn = conn
        self.scratch = scratch  # the coordinator's scratch folder (rnnlab.sweep._owners)
        self.run_id: str | None = None
        self.keeps_artifacts = True
        self._buffer: list[tuple[dict[str, float], int]] = []
        self._count = 0

    def start(
        self, experiment: str, run_name: str, tags: dict[str, str], params: dict[str, str]
    ) -> None:
        self.conn.send(Started(experiment, run_name, tags, params))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._buffer.append((dict(metrics), step))
        self._count += len(metrics)
        if self._count >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self.conn.send(Metrics(self._buffer))
            self._buffer, self._count = [], 0

    def set_tags(self, tags: dict[str, str]) -> None:
        self.flush()
        self.conn.send(Tags(tags))

    def log_artifacts(self, folder: Path) -> None:
        """Hand the coordinator a copy (``folder`` is deleted on return); no waiting for it.

        The copy is made in the coordinator's scratch folder, which the coordinator removes on
        exit and a later start removes if the coordinator was killed: nothing is left in the
        temporary folder for good (issue 18)."""
        self.flush()
        copy = tempfile.mkdtemp(prefix="artifacts-", dir=self.scratch)
        shutil.copytree(folder, copy, dirs_exist_ok=True)
        self.conn.send(Artifacts(copy))

    def should_stop(self, step: int, scores: dict[str, float]) -> bool:
        """Report an evaluation to the coordinator (Optuna's pruner) and get its decision."""
        self.flush()
        self.conn.send(Report(step, scores))
        return bool(self.conn.recv())

    def finish(self, status: str) -> None:
        self.flush()
        self.conn.send(Finished(status))

    def describe(self) -> str:
        return "recorded by the sweep"


def _exit_with_parent(parent: int) -> None:
    """A worker whose coordinator died (SIGKILL) must not train on: poll and exit."""

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="rnnlab-parent-watch", daemon=True).start()


def _keep_compile_cache() -> None:
    """torch.compile's kernel cache stays where torch puts it by default (the temporary folder's
    ``torchinductor_<user>``), shared across sweeps, not in the scratch folder removed at exit."""
    import getpass
    import re

    try:
        user = re.sub(r'[\\/:*?"<>|]', "_", getpass.getuser())
    except (KeyError, OSError):  # no user name (a container without a passwd entry)
        return
    default = os.path.join(tempfile.gettempdir(), f"torchinductor_{user}")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", default)


def worker_main(
    conn: Connection, env: dict[str, str], threads: int, fault: str, parent: int, scratch: str
) -> None:
    """Entry point of a worker process (``spawn``: nothing is inherited but these arguments).

    ``scratch`` is the coordinator's scratch folder: the worker's temporary files (a trial's
    artifact folder, the copies it hands over) go there, so a kill leaks nothing for good."""
    os.environ.update(env)  # before torch, so CUDA sees only this slot's GPU
    _keep_compile_cache()
    tempfile.tempdir = scratch
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    fault_file = open(fault, "w")  # noqa: SIM115 - kept open for faulthandler until exit
    faulthandler.enable(fault_file)
    _exit_with_parent(parent)

    from rnnlab.run import prepare_process

    prepare_process(flush_denormal=True, threads=threads)  # first, before any parallel op
    from rnnlab.plugins import make_plugin_manager

    registry = make_plugin_manager(strict=False).registry()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        match message:
            case Stop():
                return
            case RunTrial(config):
                conn.send(run_trial(conn, registry, config, scratch))


def run_trial(
    conn: Connection, registry: Any, config: dict[str, Any], scratch: str | None = None
) -> Result:
    """Train one trial; every outcome (failed set-up included) comes back as a :class:`Result`."""
    from rnnlab.run import RunResult, Source, resolve, train

    tracker = PipeTracker(conn, scratch)
    try:
        run = resolve(Source(None, config), registry)
        result = train(run, tracker, should_stop=tracker.should_stop)
    except Exception as exc:  # set-up failed before the run could start
        message = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        result = RunResult(FAILED, 0, message=message)
    return Result(result.outcome, dict(result.metrics), result.message)
