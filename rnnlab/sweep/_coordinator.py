"""The sweep coordinator: slots take trials from the study the moment they are free.

The coordinator is the single writer: it asks Optuna for trials, hands each to a worker process
(rnnlab.sweep._workers), writes everything the worker reports (rnnlab.sweep._messages) to MLflow
(one child run per trial under the sweep's parent run) and tells Optuna the outcome. Ctrl-C stops
the workers, marks their trials stopped (MLflow KILLED; Optuna FAIL without an outcome, so a resume
runs them again) and leaves nothing RUNNING.

An artifact location that cannot be written (a full disk; rnnlab.errors.ArtifactError) while a
trial's run records its files fails that attempt (MLflow FAILED with the reason, Optuna FAIL
without an outcome, so the trial runs again) and stops the sweep like Ctrl-C, with the error's
message: every later trial would fail the same way (docs/distributed.md). A tracking server
that stays away through MLflow's retries (rnnlab.errors.TrackingError) stops it the same way,
without writing to MLflow: the running trials are failed in Optuna without an outcome (they run
again), their runs and the parent are left to the next ``rnnlab sweep``.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from rnnlab._names import FAILED, INCOMPATIBLE, MESSAGE, OUTCOME, RUN_ID, STOPPED, TAG_REASON
from rnnlab.errors import ArtifactError, TrackingError
from rnnlab.run import MlflowTracker
from rnnlab.sweep import _parentrun as parentrun
from rnnlab.sweep import _trialruns as trialruns
from rnnlab.sweep._figurework import PendingFigures
from rnnlab.sweep._journal import journal_error
from rnnlab.sweep._messages import (
    Artifacts,
    Finished,
    FromWorker,
    Metrics,
    Report,
    Result,
    Started,
    Tags,
)
from rnnlab.sweep._options import SweepOptions
from rnnlab.sweep._owners import scratch_folder
from rnnlab.sweep._plan import SweepPlan
from rnnlab.sweep._storage import unreachable_error
from rnnlab.sweep._study import SweepStudy, Task
from rnnlab.sweep._table import outcome_counts
from rnnlab.sweep._workers import Active, Slot, Worker

TAKEN = (
    "another coordinator saw no heartbeat from this one within the grace period and ran the "
    "trial again; this result was not recorded in Optuna"
)


class SweepInterrupted(Exception):
    """Ctrl-C: the sweep stopped cleanly and can be resumed."""


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
    """Run a validated plan on ``slots`` against an Optuna storage and MLflow, as ``options``
    say (storage, MLflow store, ``--fresh``, heartbeat)."""

    def __init__(
        self,
        plan: SweepPlan,
        slots: list[Slot],
        options: SweepOptions | None = None,
        display: Display | None = None,
    ) -> None:
        self.plan = plan
        self.slots = slots
        self.options = options or SweepOptions()
        self.tracking_uri = self.options.tracking_uri
        self.display = display or (lambda state: None)
        self.study = SweepStudy(plan, self.options)
        self.checked = time.monotonic()
        self.interrupted = False
        self.state = SweepState(self.study.name, plan.total, slots)
        self.parent = MlflowTracker(self.tracking_uri)
        self.workers: dict[int, Worker] = {}
        self.figures = PendingFigures()  # trials' PNGs, drawn off the slots (issue 22)

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> SweepResult:
        """Run the sweep; a database that stays unreachable through the storage's retries, or
        a journal file that cannot be written (a full disk), stops it with a StorageError (its
        running trials run again: after the grace period, or on the next start)."""
        try:
            with self.study.heartbeats(), self._ctrl_c_between_steps():
                return self._run()
        except Exception as exc:
            url = self.options.storage
            error = unreachable_error(url, exc) or journal_error(url, exc)
            if error is None:
                raise
            raise error from exc

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
        abandoned = self.study.failed_attempts()  # runs a stop while MLflow was away left open
        trialruns.close_abandoned(self.tracking_uri, self.plan.name, self.study.name, abandoned)
        finished = self.study.finished()
        self.state.counts = outcome_counts(finished)
        self.state.done_before = self.state.done
        for t in finished:
            if t.value is not None:
                self._best(t.value, f"trial {t.number}")
        scratch = scratch_folder()  # the workers' fault files and artifact copies
        stopping = away = False
        try:
            while True:
                self._stop_if_asked()
                more = self._fill(scratch)
                if self.state.active or self.figures.pending:
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
        except TrackingError as exc:  # MLflow is away: stop without writing to it
            stopping = away = True
            raise TrackingError(f"{exc}\n{self._abandon(exc)}") from exc
        except ArtifactError as exc:  # the location broke mid-sweep: stop, as Ctrl-C does
            stopping = True
            others = len(self.state.active)
            self._interrupt("FAILED", f"the sweep stopped: {exc}".splitlines()[0][:5000])
            also = f"; {others} other running trial(s) stopped and run again" if others else ""
            raise ArtifactError(
                f"{exc}\nsweep {self.study.name!r} stopped: {self.state.done} of "
                f"{self.state.total} trials done{also}."
            ) from None
        finally:
            for worker in self.workers.values():
                worker.stop()
            quick = self.interrupted or stopping
            if away:  # each upload would wait through MLflow's retries again
                self.figures.abandon()
            self.figures.drain(5.0 if quick else None)  # log the last folders
            shutil.rmtree(scratch, ignore_errors=True)
            for problem in self.figures.problems:
                sys.stderr.write(f"rnnlab: {problem}\n")
        self.display(self.state)
        return self._close_parent()

    def _fill(self, scratch: Path) -> bool:
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
                self._dispatch(slot, task, scratch)
        return more and self.study.remaining() > 0

    def _dispatch(self, slot: Slot, task: Task, scratch: Path) -> None:
        worker = self.workers.get(slot.index)
        if worker is None or not worker.process.is_alive():
            worker = self.workers[slot.index] = Worker(slot, scratch)
        assert task.point.run is not None
        config = task.point.run.as_dict()
        config["seed"] = task.seed
        tracker = MlflowTracker(self.tracking_uri, parent_run_id=self.parent.run_id)
        active = Active(task, tracker, _point_label(task), task.point.run.config.train.steps)
        self.state.active[slot.index] = active
        worker.run(active, config)

    def _serve(self) -> None:
        """Wait (briefly) for messages from busy workers and handle them."""
        busy = [w for w in self.workers.values() if w.active is not None]
        handles: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        drawn = self.figures.fileno()
        ready = set(wait([*handles, *([drawn] if drawn is not None else [])], timeout=0.5))
        if drawn is not None and drawn in ready:
            self.figures.serve()
        for worker in busy:
            if worker.conn not in ready and worker.process.sentinel not in ready:
                continue
            try:
                try:
                    while worker.active is not None and worker.conn.poll():
                        self._handle(worker, worker.active, worker.conn.recv())
                except (EOFError, OSError):
                    pass
                if worker.active is not None and not worker.process.is_alive():
                    self._crashed(worker)
            except ArtifactError as exc:  # the trial's run could not record its files
                raise ArtifactError(f"{exc}\n{self._recording_failed(worker, exc)}") from exc

    def _handle(self, worker: Worker, active: Active, message: FromWorker) -> None:
        match message:
            case Started(experiment, _, tags, params):  # one name scheme for every child run
                source = self.plan.source.name
                tags = {
                    **tags,
                    **trialruns.trial_tags(self.study.name, active.task, worker.slot, source),
                }
                name = trialruns.trial_run_name(active.task, active.label)
                active.tracker.start(experiment, name, tags, params)
                active.run_started = True
                self.study.note(active.task, RUN_ID, active.tracker.run_id)
            case Metrics(points):
                for metrics, step in points:
                    active.tracker.log_metrics(metrics, step)
                    active.step = max(active.step, step)
            case Tags(tags):
                active.tracker.set_tags(tags)
            case Artifacts(folder):  # its files logged now, the PNGs follow when drawn
                label = f"trial {active.task.trial.number} ({active.label})"
                self.figures.submit(active.tracker, Path(folder), label)
            case Report(step, scores):
                active.step = max(active.step, step)
                worker.conn.send(self.study.report(active.task, step, scores))
            case Finished(status):  # the PNGs follow into the ended run (sweep/_figurework.py)
                active.tracker.finish(status)
            case Result(outcome, metrics, text):
                self._conclude(worker, active, outcome, metrics, text)

    # -- outcomes --------------------------------------------------------------------------------
    def _conclude(
        self, worker: Worker, active: Active, outcome: str, metrics: dict[str, float], message: str
    ) -> None:
        if not active.run_started:  # set-up failed before train() started a run
            self._start_bare_run(active, worker.slot)
            trialruns.fail_run(active.tracker, message)
        if not self.study.tell(active.task, outcome, metrics, message):
            # another coordinator failed this trial (no heartbeat from us within the grace
            # period: a long stall or a lost connection) and runs it again: this result is void
            trialruns.close_run(self.tracking_uri, active.tracker.run_id, FAILED, "FAILED", TAKEN)
        else:
            value = self.plan.objective(outcome, metrics)
            if value is not None:
                self._best(value, active.label)
            self.state.counts[outcome] += 1
        self._free(worker)

    def _free(self, worker: Worker) -> None:
        """Free the worker's slot for its next trial: the current one has ended, however it did."""
        worker.active = None
        del self.state.active[worker.slot.index]

    def _crashed(self, worker: Worker) -> None:
        active = worker.active
        assert active is not None
        report = worker.crash_report()
        if not active.run_started:
            self._start_bare_run(active, worker.slot)
        worker.kill()
        retries = self.plan.section.kill_retries
        if worker.killed_from_outside() and self.study.kills(active.task) < retries:
            # a lost process (a kill from outside, a lost machine's worker), not the trial's
            # fault: this attempt's run ends stopped and the key runs again; an OOM kill comes
            # back the same way and is failed once sweep.kill_retries attempts are spent
            why = report.splitlines()[0]
            attempt = self.study.kills(active.task) + 1
            reason = f"{why}; the trial runs again (attempt {attempt} of {retries} after a kill)"
            active.tracker.set_tags({OUTCOME: STOPPED, TAG_REASON: reason})
            active.tracker.finish("KILLED")  # what the worker sent so far is written first
            self.study.requeue_killed(active.task, why)
            self._free(worker)
            return
        trialruns.fail_run(active.tracker, report)
        self._conclude(worker, active, FAILED, {}, report)

    def _recording_failed(self, worker: Worker, exc: ArtifactError) -> str:
        """Fail the attempt whose artifacts could not be written: its run ends FAILED with
        ``rnnlab.outcome=failed`` and the error as ``rnnlab.reason``; its Optuna trial is failed
        without an outcome, so the trial runs again once the location is writable (as a dead
        coordinator's trials do). Returns what became of it, for the sweep's message."""
        active = worker.active
        worker.kill()  # what it still sends (the run's end, its result) is not recorded
        if active is None:
            return ""
        reason = f"{exc} This attempt's result was not recorded; the trial runs again."
        if active.run_started:
            active.tracker.set_tags({OUTCOME: FAILED, TAG_REASON: reason[:5000]})
            active.tracker.finish("FAILED")
        self.study.note(active.task, MESSAGE, reason.splitlines()[0][:500])
        self.study.stop(active.task)
        self._free(worker)
        return (
            f"trial {active.task.trial.number} ({active.label}) ended failed (MLflow run "
            f"{active.tracker.run_id} FAILED, the reason recorded) and runs again on the next "
            "`rnnlab sweep`."
        )

    def _abandon(self, exc: TrackingError) -> str:
        """Stop every running trial without MLflow (it cannot be reached): each is failed in
        Optuna without an outcome, so it runs again; what MLflow holds of the attempts stays as
        it was (their runs RUNNING: nothing can end them while the server is away; the next
        start ends them, trialruns.close_abandoned). Returns the sweep's part of the message."""
        stopped = []
        why = f"{exc}".splitlines()[0][:500]
        for index, active in list(self.state.active.items()):
            self.workers[index].kill()
            self.study.note(active.task, MESSAGE, f"the sweep stopped: {why}"[:500])
            self.study.stop(active.task)
            stopped.append(f"trial {active.task.trial.number} ({active.label})")
        self.state.active.clear()
        self.study.stop_claimed()
        also = f"; stopped, and run again on the next `rnnlab sweep`: {', '.join(stopped)}"
        return (
            f"sweep {self.study.name!r} stopped: {self.state.done} of {self.state.total} trials "
            f"done{also if stopped else ''}. MLflow could not be told: the attempts' runs and "
            "the sweep's parent run stay RUNNING there until the next `rnnlab sweep` ends them "
            "(the next attempts get runs of their own)."
        )

    def _start_bare_run(self, active: Active, slot: Slot | None) -> None:
        trialruns.start_bare_run(
            active.tracker,
            self.plan.name,
            self.study.name,
            active.task,
            active.label,
            slot,
            self.plan.source.name,
        )
        active.run_started = True
        self.study.note(active.task, RUN_ID, active.tracker.run_id)

    def _record_incompatible(self, task: Task) -> None:
        active = Active(
            task, MlflowTracker(self.tracking_uri, self.parent.run_id), _point_label(task), 0
        )
        self._start_bare_run(active, None)
        reason = task.point.problem or INCOMPATIBLE
        active.tracker.set_tags({OUTCOME: INCOMPATIBLE, TAG_REASON: reason[:5000]})
        active.tracker.finish("FINISHED")
        self.study.tell(task, INCOMPATIBLE, {}, reason)
        self.state.counts[INCOMPATIBLE] += 1

    def _best(self, value: float, where: str) -> None:
        maximize = self.plan.section.objective.direction == "maximize"
        best = self.state.best
        if best is None or (value > best[0] if maximize else value < best[0]):
            self.state.best = (value, where)

    def _interrupt(self, status: str = "KILLED", reason: str = "") -> None:
        """Stop the running trials (MLflow KILLED, ``stopped``; they run again) and end the
        parent run with ``status`` unless other machines still run the sweep."""
        for index, active in list(self.state.active.items()):
            self.workers[index].kill()
            if active.run_started:
                run_id = active.tracker.run_id
                trialruns.close_run(self.tracking_uri, run_id, STOPPED, "KILLED", reason)
            self.study.stop(active.task)
        self.state.active.clear()
        self.study.stop_claimed()  # a trial asked for but not yet handed to a slot
        if not self.study.unfinished_elsewhere(queued=False):  # others still run the sweep
            self.parent.finish(status)  # the queued trials wait for the next start

    def _check_others(self) -> None:
        """Every few seconds: fail and re-queue the trials of dead coordinators, and take the
        counts from the study (other coordinators finish trials too)."""
        if time.monotonic() - self.checked < self.study.check_every:
            return
        self.checked = time.monotonic()
        stale = self.study.prepare()
        trialruns.close_stale(self.tracking_uri, self.plan.name, self.study.name, stale)
        if stale or len(self.study.finished()) != self.state.done:
            self.state.counts = outcome_counts(self.study.finished())

    # -- the parent run --------------------------------------------------------------------------
    def _open_parent(self) -> None:
        parentrun.open_parent(self.parent, self.plan, self.study, self.slots)

    def _close_parent(self) -> SweepResult:
        best = self.state.best[0] if self.state.best is not None else None
        table, counts = parentrun.close_parent(self.parent, self.plan, self.study, best)
        assert self.parent.run_id is not None
        return SweepResult(self.study.name, self.parent.run_id, counts, table)
