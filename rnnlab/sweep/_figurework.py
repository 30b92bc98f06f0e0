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

What the run needs is logged at once, before the trial is told (issue 18): :meth:`submit` logs
the folder's files (arrays, config, summary, model) in the coordinator's loop, as before issue 22
when the whole folder was logged there, and only the PNGs drawn later follow into the run. So an
artifact location that cannot be written (a full disk) raises its ArtifactError while the trial
is still open, and the coordinator fails that attempt (rnnlab.sweep._coordinator); a PNG that
cannot be written after that loses nothing the arrays do not hold, and is a problem reported at
the end of the sweep (:attr:`PendingFigures.problems`), not a stop.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rnnlab.errors import ArtifactError, StorageError
from rnnlab.run import ORDER_FILE, Drawer, log_files

if TYPE_CHECKING:
    from rnnlab.run import MlflowTracker

DRAIN_TIMEOUT_S = 60.0  # at the end of a sweep: the last folders' figures
DRAWN = ".drawn"  # inside a drawn folder: its new PNGs, logged into the run's root


@dataclass
class _Folder:
    tracker: MlflowTracker
    label: str
    logged: set[str]  # the files logged by submit(): the PNGs are what is new after drawing


class PendingFigures:
    """The trial folders whose figures the drawer process is drawing, in order."""

    def __init__(self) -> None:
        self.drawer = Drawer()
        self.pending: dict[Path, _Folder] = {}
        self.problems: list[str] = []

    def submit(self, tracker: MlflowTracker, folder: Path, label: str = "") -> None:
        """A worker's artifact folder (the coordinator's to delete): its files are logged now
        (an :class:`~rnnlab.errors.ArtifactError` propagates, the folder deleted), then its
        ordered figures are drawn and follow. ``label`` names the trial in :attr:`problems`."""
        if not log_files(tracker, folder):  # no figures ordered: nothing follows
            return
        self.pending[folder] = _Folder(tracker, label, {p.name for p in folder.iterdir()})
        try:
            self.drawer.submit(folder)
        except OSError as exc:  # the drawer died: nothing more to log for this folder
            self.problems.append(f"{label}: the figure process failed ({exc}); figures not drawn")
            self._done(folder)

    def fileno(self) -> int | None:
        """What the coordinator's wait() should watch (None when nothing is pending)."""
        return self.drawer.fileno() if self.pending else None

    def serve(self) -> None:
        """Log the figures the drawer has answered for (call when :meth:`fileno` is ready)."""
        answers = self.drawer.answers()
        for folder, problem in answers:
            entry = self.pending.get(folder)
            if problem:
                self.problems.append(f"{entry.label if entry else folder.name}: {problem}")
            if entry is not None:
                self._done(folder)
        if not answers and not self.drawer.alive:  # EOF: the drawer is gone
            self.problems.append("the figure process exited; figures left undrawn")
            for folder in list(self.pending):
                self._done(folder)

    def drain(self, timeout: float | None = None) -> None:
        """Wait for every pending folder (the sweep is over or stopping), then stop the
        drawer; what is not drawn in ``timeout`` (default :data:`DRAIN_TIMEOUT_S`) is left
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

    def abandon(self) -> None:
        """Forget the pending folders without logging their PNGs (the tracking server is away:
        each upload would wait through MLflow's retries); the drawer is stopped by :meth:`drain`."""
        for folder in list(self.pending):
            del self.pending[folder]
            shutil.rmtree(folder, ignore_errors=True)

    def _done(self, folder: Path) -> None:
        """Log the folder's new files (its PNGs) into the run and delete the folder; a PNG that
        cannot be written is a problem (the run has the arrays it was drawn from)."""
        entry = self.pending.pop(folder)
        try:
            (folder / ORDER_FILE).unlink(missing_ok=True)
            new = [p for p in folder.iterdir() if p.name not in entry.logged]
            if new:
                drawn = folder / DRAWN
                drawn.mkdir()
                for path in new:
                    path.rename(drawn / path.name)
                entry.tracker.log_artifacts(drawn)
        except (ArtifactError, StorageError, OSError) as exc:  # StorageError: TrackingError
            what = str(exc).split(". ")[0]  # what could not be written where, without the fix
            self.problems.append(
                f"{entry.label}: its figures were not recorded ({what}); its run keeps "
                "gradient_flow.npz, from which `rnnlab report` draws them"
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
