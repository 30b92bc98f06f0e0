"""A sweep's trial figures, drawn off the slot and off the coordinator's message loop.

A worker (rnnlab.sweep._child.PipeTracker) does not draw its trial's PNGs: it hands the
coordinator a copy of the artifact folder with a figure order in it (rnnlab.run._drawing) and
goes on without waiting. The coordinator gives the folder to one :class:`rnnlab.run.Drawer`
process and keeps serving its workers (a pruning report waits for its answer); when the PNGs are
there it logs the folder. The PNGs were 4.6% of a sweep trial on the slot (docs/performance.md,
before issue 22), more than the 2% goal for all of tracking.

The trial's run is ended, and Optuna told, when the worker says so, as before: the PNGs follow
into the ended run a moment later (MLflow takes artifacts of a terminated run). Holding the end
back until they were drawn was tried: Optuna then heard of a trial seconds later, which starved
the median pruner of completed trials (tests/test_sweep.py's pruner test) and let a coordinator
killed in between leave a told trial with a RUNNING run. A coordinator killed before the Drawer
answers leaves a FINISHED run without its PNGs; its ``gradient_flow.npz`` holds the same curves
(``rnnlab report`` draws from it). A drawer that dies, or a sweep that stops, still logs every
folder (without the figures not drawn).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rnnlab.run import ORDER_FILE, Drawer

if TYPE_CHECKING:
    from rnnlab.run import MlflowTracker

DRAIN_TIMEOUT_S = 60.0  # at the end of a sweep: the last folders' figures


@dataclass
class _Folder:
    tracker: MlflowTracker


class PendingFigures:
    """The trial folders whose figures the drawer process is drawing, in order."""

    def __init__(self) -> None:
        self.drawer = Drawer()
        self.pending: dict[Path, _Folder] = {}
        self.problems: list[str] = []

    def submit(self, tracker: MlflowTracker, folder: Path) -> None:
        """A worker's artifact folder (the coordinator's to delete): drawn first if ordered."""
        if not (folder / ORDER_FILE).exists():
            self._log(tracker, folder)
            return
        self.pending[folder] = _Folder(tracker)
        try:
            self.drawer.submit(folder)
        except OSError as exc:  # the drawer died: log the folder without its figures
            self.problems.append(f"the figure process failed: {exc}")
            self._done(folder)

    def fileno(self) -> int | None:
        """What the coordinator's wait() should watch (None when nothing is pending)."""
        return self.drawer.fileno() if self.pending else None

    def serve(self) -> None:
        """Log the folders the drawer has answered for (call when :meth:`fileno` is ready)."""
        answers = self.drawer.answers()
        for folder, problem in answers:
            if problem:
                self.problems.append(f"{folder.name}: {problem}")
            if folder in self.pending:
                self._done(folder)
        if not answers and not self.drawer.alive:  # EOF: the drawer is gone
            self.problems.append("the figure process exited; figures left undrawn")
            for folder in list(self.pending):
                self._done(folder)

    def drain(self, timeout: float | None = None) -> None:
        """Wait for every pending folder (the sweep is over or stopping), then stop the
        drawer; what is not drawn in ``timeout`` (default :data:`DRAIN_TIMEOUT_S`) is logged
        without its figures."""
        from multiprocessing.connection import wait

        deadline = time.monotonic() + (DRAIN_TIMEOUT_S if timeout is None else timeout)
        while self.pending and time.monotonic() < deadline:
            fd = self.fileno()
            if fd is None:
                break
            if wait([fd], timeout=max(0.0, deadline - time.monotonic())):
                self.serve()
        for folder in list(self.pending):
            self._done(folder)
        self.drawer.close()

    def _done(self, folder: Path) -> None:
        entry = self.pending.pop(folder)
        self._log(entry.tracker, folder)

    @staticmethod
    def _log(tracker: MlflowTracker, folder: Path) -> None:
        try:
            (folder / ORDER_FILE).unlink(missing_ok=True)  # an order never drawn is not logged
            tracker.log_artifacts(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
