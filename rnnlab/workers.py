"""Device slots and the worker processes that train a sweep's trials.

One long-lived worker process per slot (one per GPU, or CPU slots that divide the cores), started
with the ``spawn`` method so that CUDA_VISIBLE_DEVICES and the torch thread count are set before
torch loads. A worker trains one trial at a time and hands everything it would record to the
coordinator through its pipe (:class:`PipeTracker`): the coordinator is the only process that
writes to MLflow and Optuna, so their sqlite/journal stores never see concurrent writers. A worker
that dies (segfault, OOM kill) is noticed by the coordinator, which records its trial as failed and
starts a fresh worker for the slot.
"""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

FLUSH_EVERY = 500  # metric values per message to the coordinator


@dataclass(frozen=True)
class Slot:
    """Where one trial at a time runs: a GPU (by its CUDA_VISIBLE_DEVICES entry) or the CPU."""

    index: int
    gpu: str | None
    threads: int
    share: int = 0  # the how-manieth slot on its GPU (``--workers`` above the GPU count)

    def label(self) -> str:
        if self.gpu is None:
            return f"cpu {self.index}"
        return f"gpu {self.gpu}" + (f" #{self.share + 1}" if self.share else "")

    def env(self) -> dict[str, str]:
        return {"CUDA_VISIBLE_DEVICES": self.gpu} if self.gpu is not None else {}


def visible_gpus() -> list[str]:
    """CUDA_VISIBLE_DEVICES entries (or indices) of the GPUs this process may use."""
    import torch  # device_count does not create a CUDA context

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()][:count]
    return [str(i) for i in range(count)]


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_slots(workers: int | str, gpus: Sequence[str] | None, trials: int) -> list[Slot]:
    """One slot per GPU (``auto`` on a GPU machine); CPU slots dividing the cores otherwise.

    Args:
        workers: ``"auto"`` or a number of slots.
        gpus: GPUs to use (``--gpus``); None = every visible one.
        trials: no more slots than trials are made.
    """
    visible = visible_gpus()
    devices = list(gpus) if gpus is not None else visible
    unknown = [g for g in devices if g not in visible]
    if unknown:
        from rnnlab.errors import ConfigError

        have = ", ".join(visible) or "none"
        raise ConfigError(
            f"--gpus {','.join(devices)}: GPU {', '.join(unknown)} is not visible "
            f"here (visible GPUs: {have}); leave --gpus out to use every visible one"
        )
    cores = cpu_cores()
    count = (len(devices) or cores) if workers == "auto" else int(workers)
    count = max(1, min(count, max(trials, 1)))
    threads = max(1, cores // count)  # two 2-thread workers on 2 cores ran 15x slower
    if not devices:
        return [Slot(i, None, threads) for i in range(count)]
    return [Slot(i, devices[i % len(devices)], threads, i // len(devices)) for i in range(count)]


class Worker:
    """A worker process for one slot, and the trial it is running (if any)."""

    def __init__(self, slot: Slot, fault_dir: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self.slot = slot
        self.fault_file = fault_dir / f"slot{slot.index}-{time.time_ns()}.txt"
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=worker_main,
            args=(child, slot.env(), slot.threads, str(self.fault_file), os.getpid()),
            name=f"rnnlab-{slot.label()}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.task: Any = None  # the coordinator's record of the running trial

    def run(self, payload: dict[str, Any]) -> None:
        self.conn.send(("run", payload))

    def crash_report(self) -> str:
        """Why the process died: exit code or signal, and Python's fault traceback if any."""
        self.process.join(timeout=5)
        code = self.process.exitcode
        if code is not None and code < 0:
            why = f"the worker process was killed by {signal.Signals(-code).name}"
        else:
            why = f"the worker process exited with code {code}"
        try:
            fault = self.fault_file.read_text().strip()
        except OSError:
            fault = ""
        return f"{why} during the trial\n\n{fault}".strip()

    def stop(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self.conn.send(("stop",))
        self.process.join(timeout=10)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=10)
        self.conn.close()


class PipeTracker:
    """The worker's Tracker: forwards every call to the coordinator, which writes to MLflow."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.run_id: str | None = None
        self.keeps_artifacts = True
        self._buffer: list[tuple[dict[str, float], int]] = []
        self._count = 0

    def start(
        self, experiment: str, run_name: str, tags: dict[str, str], params: dict[str, str]
    ) -> None:
        self.conn.send(("start", experiment, run_name, tags, params))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._buffer.append((dict(metrics), step))
        self._count += len(metrics)
        if self._count >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self.conn.send(("metrics", self._buffer))
            self._buffer, self._count = [], 0

    def set_tags(self, tags: dict[str, str]) -> None:
        self.flush()
        self.conn.send(("tags", tags))

    def log_artifacts(self, folder: Path) -> None:
        self.flush()
        self.conn.send(("artifacts", str(folder)))
        self.conn.recv()  # the folder is deleted when this returns: wait until it is copied

    def should_stop(self, step: int, scores: dict[str, float]) -> bool:
        """Report an evaluation to the coordinator (Optuna's pruner) and get its decision."""
        self.flush()
        self.conn.send(("report", step, scores))
        return bool(self.conn.recv())

    def finish(self, status: str) -> None:
        self.flush()
        self.conn.send(("finish", status))

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


def worker_main(
    conn: Connection, env: dict[str, str], threads: int, fault: str, parent: int
) -> None:
    """Entry point of a worker process (``spawn``: nothing is inherited but these arguments)."""
    os.environ.update(env)  # before torch, so CUDA sees only this slot's GPU
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    fault_file = open(fault, "w")  # noqa: SIM115 - kept open for faulthandler until exit
    faulthandler.enable(fault_file)
    _exit_with_parent(parent)

    from rnnlab.train import prepare_process

    prepare_process(flush_denormal=True, threads=threads)  # first, before any parallel op
    from rnnlab.plugins import make_plugin_manager

    registry = make_plugin_manager(strict=False).registry()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        conn.send(("result", run_trial(conn, registry, message[1])))


def run_trial(conn: Connection, registry: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Train one trial; every outcome (failed set-up included) comes back as a result dict."""
    from rnnlab.config import resolve
    from rnnlab.sources import Source
    from rnnlab.train import RunResult, train

    tracker = PipeTracker(conn)
    try:
        run = resolve(Source(None, payload["config"]), registry)
        result = train(run, tracker, should_stop=tracker.should_stop)
    except Exception as exc:  # set-up failed before the run could start
        message = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        result = RunResult("failed", 0, message=message)
    return asdict(result)
