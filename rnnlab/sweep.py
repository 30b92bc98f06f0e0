"""The sweep coordinator: slots take trials from the study the moment they are free.

The coordinator is the single writer: it asks Optuna for trials, hands each to a worker process
(rnnlab.workers), writes everything the worker reports to MLflow (one child run per trial under
the sweep's parent run) and tells Optuna the outcome. Ctrl-C stops the workers, marks their trials
stopped (MLflow KILLED; Optuna FAIL without an outcome, so a resume runs them again) and leaves
nothing RUNNING.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from rnnlab import parentrun, summary, trialruns
from rnnlab.study import RUN_ID, SweepStudy, Task
from rnnlab.sweepconfig import SweepPlan
from rnnlab.tracking import MlflowTracker
from rnnlab.workers import Slot, Worker

TAKEN = (
    "another coordinator saw no heartbeat from this one within the grace period and ran the "
    "trial again; this result was not recorded in Optuna"
)


class SweepInterrupted(Exception):
    """Ctrl-C: the sweep stopped cleanly and can be resumed."""


@dataclass
class Active:
    """A trial running in a slot, as the coordinator sees it."""

    task: Task
    tracker: MlflowTracker
    label: str
    steps: int
    step: int = 0
    run_started: bool = False


@dataclass
class SweepState:
    """What a progress display shows."""

    name: str
    total: int
    slots: list[Slot]
    counts: Counter[str] = field(default_factory=Counter)
    active: dict[int, Active] = field(default_factory=dict)  # slot index -> trial
    best: tuple[float, str] | None = None
    started: float = field(default_factory=time.monotonic)
    done_before: int = 0  # finished in earlier sessions of this sweep

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def eta(self) -> float | None:
        new = self.done - self.done_before
        if new <= 0:
            return None
        return (time.monotonic() - self.started) / new * (self.total - self.done)


@dataclass
class SweepResult:
    study_name: str
    parent_run_id: str
    counts: Counter[str]
    table: list[dict[str, Any]]


Display = Callable[[SweepState], None]


def _point_label(task: Task) -> str:
    parts = [f"{k}={v}" for k, v in task.point.labels().items()]
    return f"{' '.join(parts) or 'base'} s{task.seed}"


class Sweep:
    """Run a validated plan on ``slots`` against an Optuna storage and MLflow."""

    def __init__(
        self,
        plan: SweepPlan,
        storage_url: str,
        slots: list[Slot],
        tracking_uri: str | None = None,
        fresh: bool = False,
        display: Display | None = None,
        heartbeat: int | None = None,
    ) -> None:
        self.plan = plan
        self.slots = slots
        self.tracking_uri = tracking_uri
        self.display = display or (lambda state: None)
        self.study = SweepStudy(plan, storage_url, fresh, heartbeat)
        self.checked = time.monotonic()
        self.interrupted = False
        self.state = SweepState(self.study.name, plan.total, slots)
        self.parent = MlflowTracker(tracking_uri)
        self.workers: dict[int, Worker] = {}

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> SweepResult:
        with self.study.heartbeats(), self._ctrl_c_between_steps():
            return self._run()

    @contextlib.contextmanager
    def _ctrl_c_between_steps(self) -> Iterator[None]:
        """Ctrl-C sets a flag that the loop acts on between two steps: a KeyboardInterrupt in
        the middle of a storage write (Optuna's journal lock) would leave a half-done state. A
        second Ctrl-C interrupts at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.interrupted:
                raise KeyboardInterrupt
            self.interrupted = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _stop_if_asked(self) -> None:
        if self.interrupted:
            raise KeyboardInterrupt

    def _run(self) -> SweepResult:
        if self.study.founder:  # queue the keys, then open the parent run the others wait for
            stale = self.study.prepare()
            self._open_parent()
        else:  # joining: by the time the parent run exists, the founder has queued the keys
            self._open_parent()
            stale = self.study.prepare()
        trialruns.close_stale(self.tracking_uri, self.plan.name, self.study.name, stale)
        finished = self.study.finished()
        self.state.counts = summary.counts(finished)
        self.state.done_before = self.state.done
        for t in finished:
            if t.value is not None:
                self._best(t.value, f"trial {t.number}")
        fault_dir = Path(tempfile.mkdtemp(prefix="rnnlab-faults-"))
        try:
            while True:
                self._stop_if_asked()
                more = self._fill(fault_dir)
                if self.state.active:
                    self._serve()
                elif not more:
                    # our queue is empty: stay while other coordinators' trials might still
                    # fail over to us (a machine lost mid-trial), then finish together
                    if not self.study.unfinished_elsewhere():
                        break
                    time.sleep(min(1.0, self.study.check_every))
                self._check_others()
                self.display(self.state)
        except KeyboardInterrupt:
            self._interrupt()
            raise SweepInterrupted(
                f"sweep {self.study.name!r} stopped: {self.state.done} of {self.state.total} "
                "trials done. Run the same command again to resume."
            ) from None
        finally:
            for worker in self.workers.values():
                worker.stop()
            shutil.rmtree(fault_dir, ignore_errors=True)
        self.display(self.state)
        return self._close_parent()

    def _fill(self, fault_dir: Path) -> bool:
        """Give every idle slot a trial; False when there is nothing left to start."""
        more = True
        for slot in self.slots:
            while slot.index not in self.state.active:
                self._stop_if_asked()
                task = self.study.next_task()
                if task is None:
                    more = False
                    break
                if task.point.run is None:
                    self._record_incompatible(task)
                    continue
                self._dispatch(slot, task, fault_dir)
        return more and self.study.remaining() > 0

    def _dispatch(self, slot: Slot, task: Task, fault_dir: Path) -> None:
        worker = self.workers.get(slot.index)
        if worker is None or not worker.process.is_alive():
            worker = self.workers[slot.index] = Worker(slot, fault_dir)
        assert task.point.run is not None
        config = task.point.run.as_dict()
        config["seed"] = task.seed
        tracker = MlflowTracker(self.tracking_uri, parent_run_id=self.parent.run_id)
        active = Active(task, tracker, _point_label(task), task.point.run.config.train.steps)
        worker.task = active
        self.state.active[slot.index] = active
        worker.run({"config": config})

    def _serve(self) -> None:
        """Wait (briefly) for messages from busy workers and handle them."""
        busy = [w for w in self.workers.values() if w.task is not None]
        handles: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        ready = set(wait(handles, timeout=0.5)) if handles else set()
        for worker in busy:
            if worker.conn not in ready and worker.process.sentinel not in ready:
                continue
            try:
                while worker.task is not None and worker.conn.poll():
                    self._handle(worker, worker.conn.recv())
            except (EOFError, OSError):
                pass
            if worker.task is not None and not worker.process.is_alive():
                self._crashed(worker)

    def _handle(self, worker: Worker, message: tuple[Any, ...]) -> None:
        active: Active = worker.task
        kind = message[0]
        if kind == "start":
            _, experiment, run_name, tags, params = message
            tags = {**tags, **trialruns.trial_tags(self.study.name, active.task, worker.slot)}
            active.tracker.start(experiment, run_name, tags, params)
            active.run_started = True
            self.study.note(active.task, RUN_ID, active.tracker.run_id)
        elif kind == "metrics":
            for metrics, step in message[1]:
                active.tracker.log_metrics(metrics, step)
                active.step = max(active.step, step)
        elif kind == "tags":
            active.tracker.set_tags(message[1])
        elif kind == "artifacts":
            active.tracker.log_artifacts(Path(message[1]))
            worker.conn.send(True)
        elif kind == "report":
            _, step, scores = message
            active.step = max(active.step, step)
            worker.conn.send(self.study.report(active.task, step, scores))
        elif kind == "finish":
            active.tracker.finish(message[1])
        elif kind == "result":
            result = message[1]
            self._conclude(worker, result["outcome"], result["metrics"], result["message"])

    # -- outcomes --------------------------------------------------------------------------------
    def _conclude(
        self, worker: Worker, outcome: str, metrics: dict[str, float], message: str
    ) -> None:
        active: Active = worker.task
        if not active.run_started:  # set-up failed before train() started a run
            self._start_bare_run(active, worker.slot)
            trialruns.fail_run(active.tracker, message)
        if not self.study.tell(active.task, outcome, metrics, message):
            # another coordinator failed this trial (no heartbeat from us within the grace
            # period: a long stall or a lost connection) and runs it again: this result is void
            trialruns.close_run(self.tracking_uri, active.tracker.run_id, "failed", "FAILED", TAKEN)
            outcome = "lost"
        value = metrics.get(self.plan.section.objective.metric)
        if outcome == "completed" and value is not None and math.isfinite(value):
            self._best(value, active.label)
        if outcome != "lost":
            self.state.counts[outcome] += 1
        worker.task = None
        del self.state.active[worker.slot.index]

    def _crashed(self, worker: Worker) -> None:
        active: Active = worker.task
        report = worker.crash_report()
        if not active.run_started:
            self._start_bare_run(active, worker.slot)
        trialruns.fail_run(active.tracker, report)
        worker.kill()
        self._conclude(worker, "failed", {}, report)

    def _start_bare_run(self, active: Active, slot: Slot | None) -> None:
        trialruns.start_bare_run(
            active.tracker, self.plan.name, self.study.name, active.task, active.label, slot
        )
        active.run_started = True
        self.study.note(active.task, RUN_ID, active.tracker.run_id)

    def _record_incompatible(self, task: Task) -> None:
        active = Active(
            task, MlflowTracker(self.tracking_uri, self.parent.run_id), _point_label(task), 0
        )
        self._start_bare_run(active, None)
        reason = task.point.problem or "incompatible"
        active.tracker.set_tags({"rnnlab.outcome": "incompatible", "rnnlab.reason": reason[:5000]})
        active.tracker.finish("FINISHED")
        self.study.tell(task, "incompatible", {}, reason)
        self.state.counts["incompatible"] += 1

    def _best(self, value: float, where: str) -> None:
        maximize = self.plan.section.objective.direction == "maximize"
        best = self.state.best
        if best is None or (value > best[0] if maximize else value < best[0]):
            self.state.best = (value, where)

    def _interrupt(self) -> None:
        for index, active in list(self.state.active.items()):
            self.workers[index].kill()
            if active.run_started:
                trialruns.close_run(self.tracking_uri, active.tracker.run_id, "stopped", "KILLED")
            self.study.stop(active.task)
        self.state.active.clear()
        self.study.stop_claimed()  # a trial asked for but not yet handed to a slot
        if not self.study.unfinished_elsewhere():  # other machines still run the sweep
            self.parent.finish("KILLED")

    def _check_others(self) -> None:
        """Every few seconds: fail and re-queue the trials of dead coordinators, and take the
        counts from the study (other coordinators finish trials too)."""
        if time.monotonic() - self.checked < self.study.check_every:
            return
        self.checked = time.monotonic()
        stale = self.study.prepare()
        trialruns.close_stale(self.tracking_uri, self.plan.name, self.study.name, stale)
        if stale or len(self.study.finished()) != self.state.done:
            self.state.counts = summary.counts(self.study.finished())

    # -- the parent run --------------------------------------------------------------------------
    def _open_parent(self) -> None:
        parentrun.open_parent(self.parent, self.plan, self.study, self.slots)

    def _close_parent(self) -> SweepResult:
        best = self.state.best[0] if self.state.best is not None else None
        table, counts = parentrun.close_parent(self.parent, self.plan, self.study, best)
        assert self.parent.run_id is not None
        return SweepResult(self.study.name, self.parent.run_id, counts, table)
