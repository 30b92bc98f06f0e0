"""Device slots, and the coordinator's side of the worker processes that train a sweep's trials.

One long-lived worker process per slot (one per GPU, or CPU slots that divide the cores); the
process itself is rnnlab.sweep._child. A worker trains one trial at a time and hands everything it
would record to the coordinator through its pipe. A worker that dies (segfault, OOM kill) is
noticed by the coordinator, which records its trial as failed and starts a fresh worker for the
slot.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnlab.sweep._child import worker_main
from rnnlab.sweep._messages import RunTrial, Stop

if TYPE_CHECKING:
    from rnnlab.run import MlflowTracker
    from rnnlab.sweep._study import Task


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


@dataclass
class Active:
    """A trial running in a slot, as the coordinator sees it."""

    task: Task
    tracker: MlflowTracker
    label: str
    steps: int
    step: int = 0
    run_started: bool = False


class Worker:
    """A worker process for one slot, and the trial it is running (if any)."""

    def __init__(self, slot: Slot, scratch: Path) -> None:
        """Start the process; its fault traceback and temporary files go in ``scratch``, the
        coordinator's scratch folder (rnnlab.sweep._owners.scratch_folder)."""
        context = multiprocessing.get_context("spawn")
        self.slot = slot
        self.fault_file = scratch / f"slot{slot.index}-{time.time_ns()}.txt"
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=worker_main,
            args=(child, slot.env(), slot.threads, str(self.fault_file), os.getpid(), str(scratch)),
            name=f"rnnlab-{slot.label()}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.active: Active | None = None  # the coordinator's record of the running trial

    def run(self, active: Active, config: dict[str, Any]) -> None:
        """Train ``active``'s trial with ``config`` (resolved, with the trial's seed)."""
        self.active = active
        self.conn.send(RunTrial(config))

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

    def killed_from_outside(self) -> bool:
        """Whether the process was killed (SIGKILL, SIGTERM, SIGHUP: the OOM killer, a person,
        a lost session) rather than crashing by itself (SIGSEGV, SIGABRT) or exiting."""
        code = self.process.exitcode
        return code is not None and -code in (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP)

    def stop(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self.conn.send(Stop())
        self.process.join(timeout=10)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=10)
        self.conn.close()
