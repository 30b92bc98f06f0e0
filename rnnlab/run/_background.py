"""``rnnlab run``'s tracker: MLflow in a helper process, off the training's critical path.

Recording a run in MLflow cost ~4 s of a 5.5 s run (issue 22: ``import mlflow`` 1.3-1.75 s,
opening the sqlite store ~1.2 s, then the writes and the PNGs), nearly all of it Python work.
A thread would not take it off the path: it holds the GIL while the training loop needs it. So
:class:`BackgroundTracker`, built first thing in ``rnnlab run`` (before the config, the data and
the model), starts a helper process (``sys.executable``) that imports MLflow and opens the
store (one that exists: a new store is created when the run starts, so a bad config leaves no
``mlflow.db``) while the main process builds the run and trains on its own core. The main
process only queues messages (a sender thread does the pipe writes, so a helper still busy
importing never blocks a training step); it waits for the helper once, in :meth:`finish`, for
what the run needs before it ends: the artifact files (arrays, config, summary, model) and
``set_terminated``. The PNGs come after that answer: the helper imports matplotlib then, draws
them from the logged ``gradient_flow.npz`` and ``dynamics.npz`` (rnnlab.run._drawing) and logs
them into the ended run, as a sweep's coordinator does (rnnlab.sweep._figurework), while
``rnnlab run`` prints its links and exits (issue 22: waiting for the drawing held up the end of
every run, 2.2 s of a loaded machine, docs/performance.md). The helper keeps the output it
inherited until it is done, so a caller that reads it to EOF (a pipe, ``subprocess.run``) also
has the PNGs then; a terminal gets its prompt back first.

Correctness:

* the main process killed (SIGKILL, a crash): the helper reads EOF on its pipe, writes what it
  was sent, tags the run failed with the reason and ends it ``KILLED``. Metrics still queued in
  the main process are lost: it sends at least every :data:`SEND_EVERY_S` seconds;
* Ctrl-C: SIGINT goes to the whole process group; the helper ignores it (start_helper), so
  the main process's KeyboardInterrupt path still ends the run ``KILLED`` with every metric;
  once :meth:`finish` has its answer nothing stops the helper (it stops itself after the
  timeout), so the PNGs still follow;
* the helper killed while drawing: the run has ended already, with every metric and file; only
  PNGs are missing (gradient_flow.npz holds their curves, ``rnnlab report`` draws from it);
* an MLflow error in the helper (bad URI, server down, a failed write) is sent back and ends
  the helper's writing; training goes on, and :meth:`finish` returns with :attr:`error` set,
  which ``rnnlab run`` prints and exits 1 with. Nothing waits forever: :meth:`finish` gives up
  after ``timeout`` seconds (``RNNLAB_TRACKING_TIMEOUT``, default 300) and stops the helper.

Sweeps keep their own tracker (rnnlab.sweep._child.PipeTracker): their coordinator is the only
writer. Alternative rejected: ``MlflowClient.log_batch(synchronous=False)`` moves only the writes
to MLflow's thread, not the import or the store, and costs ~1 s to stop (rnnlab.run._tracking).
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from rnnlab._names import FAILED, OUTCOME, TAG_REASON
from rnnlab.errors import RnnlabError
from rnnlab.run._drawing import fulfil, log_files, start_helper

SEND_EVERY = 500  # metric values per message
SEND_EVERY_S = 2.0  # and at least this often, so that a killed process loses little
TIMEOUT_S = 300.0  # finish() waits this long for the helper's writes
KILLED_REASON = "the rnnlab process ended before the run did (killed or crashed)"


class BackgroundTracker:
    """A :class:`rnnlab.run.Tracker` whose MLflow writes happen in a helper process.

    Args:
        tracking_uri: as for :class:`rnnlab.run.MlflowTracker` (None: MLflow's default, as
            the helper resolves it: same environment, same working directory).
        timeout: seconds :meth:`finish` waits for the helper (default: $RNNLAB_TRACKING_TIMEOUT,
            else 300).
    """

    keeps_artifacts = True
    draws_figures = True  # train() leaves the PNGs to the helper (rnnlab.run._drawing)

    def __init__(self, tracking_uri: str | None = None, timeout: float | None = None) -> None:
        env_timeout = os.environ.get("RNNLAB_TRACKING_TIMEOUT")
        self.timeout = timeout if timeout is not None else float(env_timeout or TIMEOUT_S)
        self.run_id: str | None = None
        self.error: str | None = None
        self._where = ""
        self._finished = False
        to_helper_r, to_helper_w = os.pipe()
        from_helper_r, from_helper_w = os.pipe()
        code = "from rnnlab.run._background import helper_main; helper_main()"
        fds = (to_helper_r, from_helper_w)
        self.process = start_helper(code, *map(str, fds), pass_fds=fds)
        os.close(to_helper_r)
        os.close(from_helper_w)
        self._out = Connection(to_helper_w, readable=False)
        self._in = Connection(from_helper_r, writable=False)
        self._queue: queue.Queue[Any] = queue.Queue()
        self._sender = threading.Thread(target=self._send_all, name="rnnlab-tracking", daemon=True)
        self._sender.start()
        self._queue.put(("open", tracking_uri))
        self._buffer: list[tuple[dict[str, float], int, int]] = []
        self._count = 0
        self._sent = time.monotonic()

    def _send_all(self) -> None:
        """The sender thread: pipe writes block while the helper is busy; training must not."""
        while True:
            message = self._queue.get()
            if message is None:
                return
            try:
                self._out.send(message)
            except OSError:  # the helper is gone: finish() reports why
                return

    # -- the Tracker protocol --------------------------------------------------------------------
    def start(
        self, experiment: str, run_name: str, tags: dict[str, str], params: dict[str, str]
    ) -> None:
        self._queue.put(("start", experiment, run_name, dict(tags), dict(params)))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._buffer.append((dict(metrics), step, int(time.time() * 1000)))
        self._count += len(metrics)
        if self._count >= SEND_EVERY or time.monotonic() - self._sent >= SEND_EVERY_S:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._queue.put(("metrics", self._buffer))
            self._buffer, self._count = [], 0
        self._sent = time.monotonic()

    def set_tags(self, tags: dict[str, str]) -> None:
        self._flush()
        self._queue.put(("tags", dict(tags)))

    def log_artifacts(self, folder: Path) -> None:
        """Copy ``folder`` (its owner deletes it on return) for the helper, which draws the
        ordered PNGs, logs the copy and deletes it."""
        self._flush()
        copy = Path(tempfile.mkdtemp(prefix="rnnlab-artifacts-"))
        shutil.copytree(folder, copy, dirs_exist_ok=True)
        self._queue.put(("artifacts", str(copy)))

    def finish(self, status: str) -> None:
        """Send the rest, end the run with ``status`` and wait (``timeout``) for the helper to
        have written it and ended the run (the PNGs follow: module docstring); afterwards
        :attr:`run_id`, :meth:`describe` and :attr:`error` say how it went."""
        if self._finished:
            return
        self._finished = True
        self._flush()
        self._queue.put(("finish", status))
        self._queue.put(None)
        deadline = time.monotonic() + self.timeout
        while self._answer(max(0.0, deadline - time.monotonic())):
            pass
        self._close_pipes()  # the helper draws the PNGs into the ended run on its own
        threading.Thread(target=self.process.wait, name="rnnlab-reaper", daemon=True).start()

    def _answer(self, wait_s: float) -> bool:
        """Read one answer of the helper; False once there is nothing more to wait for."""
        try:
            if not self._in.poll(wait_s):
                self._note_error(
                    f"the MLflow helper process did not finish writing within {self.timeout:g} s "
                    "(RNNLAB_TRACKING_TIMEOUT); it was stopped and the run may be left RUNNING"
                    + (f" (run {self.run_id})" if self.run_id else "")
                )
                self.process.kill()
                return False
            answer = self._in.recv()
        except (EOFError, OSError):
            code = self.process.wait()
            if not self._where and self.error is None:
                self._note_error(f"the MLflow helper process exited with code {code}")
            return False
        match answer:
            case ("started", run_id, where):
                self.run_id, self._where = run_id, where
            case ("error", text):
                self._note_error(text)
            case ("finished", where):
                self._where = where
                return False
        return True

    def _note_error(self, text: str) -> None:
        self.error = self.error or text

    def close(self) -> None:
        """Stop the helper without ending a run (e.g. the config failed before one started):
        it sees EOF, and ends a run it had started as killed. After :meth:`finish` nothing:
        the helper ends on its own (it ignores SIGINT, and stops itself after ``timeout``)."""
        if self._finished:
            return
        self._finished = True
        self._queue.put(None)
        self._sender.join(timeout=5)
        self._close_pipes()
        try:
            self.process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _close_pipes(self) -> None:
        self._sender.join(timeout=5)
        for conn in (self._out, self._in):
            with contextlib.suppress(OSError):
                conn.close()

    def describe(self) -> str:
        if self.error is not None:
            return f"not recorded: {self.error}"
        return self._where or "not recorded"


# -- the helper process ------------------------------------------------------------------------


class _Helper:
    """The helper's side: the messages, applied to a real MlflowTracker; after an error it
    only reads, so that the main process never blocks on a full pipe."""

    def __init__(self, answers: Connection) -> None:
        self.answers = answers
        self.tracker: Any = None
        self.failed = False
        self.ended = False
        self.figures: Path | None = None  # a logged folder whose figures are ordered

    def fail(self, what: str) -> None:
        if not self.failed:
            self.failed = True
            error = sys.exc_info()[1]
            if isinstance(error, RnnlabError):  # its message says what and what to do
                text = str(error)
            else:
                detail = traceback.format_exc().strip().splitlines()[-1]
                text = f"MLflow: {what} failed: {detail}"
            self.answers.send(("error", text))

    def open(self, uri: str | None) -> None:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from rnnlab.run._tracking import MlflowTracker

        quiet_logs()
        self.tracker = MlflowTracker(tracking_uri=uri)
        if _exists(self.tracker.tracking_uri):  # never create a store before a run starts
            self.tracker.open_store()  # while the main process trains

    def handle(self, message: tuple[Any, ...]) -> None:
        kind, *args = message
        if self.failed:  # read on, write nothing more; still try to end the run
            if kind == "finish":
                self._end_with(self.tracker, str(args[0]))
            return
        try:
            self._apply(kind, args)
        except Exception:
            self.fail(_WHAT.get(kind, kind))
            if kind == "finish":
                self._end_with(self.tracker, str(args[0]))

    def _apply(self, kind: str, args: list[Any]) -> None:
        tracker = self.tracker
        if kind == "open":  # matplotlib is imported after the end (draw_figures), off the run
            self.open(args[0])
        elif kind == "start":
            tracker.start(*args)
            self.answers.send(("started", tracker.run_id, tracker.describe()))
        elif kind == "metrics":  # written now, while the main process trains
            for metrics, step, stamp in args[0]:
                tracker.log_metrics(metrics, step, stamp)
            tracker.flush()
        elif kind == "tags":
            tracker.set_tags(args[0])
        elif kind == "artifacts":  # the files now; the PNGs they order after the end
            folder = Path(args[0])
            if log_files(tracker, folder):
                self.figures = folder
        elif kind == "finish":
            self.ended = True
            if tracker.run_id is not None:
                tracker.finish(str(args[0]))
            self.answers.send(("finished", tracker.describe()))

    def draw_figures(self) -> None:
        """After the run has ended (the main process has its answer and may be gone): draw the
        ordered PNGs from the logged arrays and log them into the ended run, as a sweep does
        (rnnlab.sweep._figurework; MLflow takes artifacts of a terminated run). A failure is
        reported on stderr: the run keeps gradient_flow.npz, which ``rnnlab report`` draws."""
        if self.figures is None or self.failed or self.tracker is None:
            return
        folder = self.figures
        self.figures = None
        logged = {p.name for p in folder.iterdir()}
        try:
            fulfil(folder)
            drawn = folder / _DRAWN
            drawn.mkdir()
            for path in folder.iterdir():
                if path.name not in logged and path != drawn:
                    path.rename(drawn / path.name)
            self.tracker.log_artifacts(drawn)
        except Exception as exc:
            with contextlib.suppress(OSError):
                sys.stderr.write(
                    f"rnnlab: the figures of MLflow run {self.tracker.run_id} were not recorded"
                    f" ({type(exc).__name__}: {exc}); the run keeps gradient_flow.npz, from "
                    "which `rnnlab report` draws them\n"
                )
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _end_with(self, tracker: Any, status: str) -> None:
        """After an error: still try to end the run, then say the helper is done."""
        self.ended = True
        if tracker is not None and tracker.run_id is not None:
            with contextlib.suppress(Exception):
                tracker.client.set_terminated(tracker.run_id, status=status)
        self.answers.send(("finished", ""))

    def abandoned(self) -> None:
        """EOF before ``finish``: the main process is gone; end its run as killed."""
        tracker = self.tracker
        if self.ended or tracker is None or tracker.run_id is None:
            return
        with contextlib.suppress(Exception):
            tracker.set_tags({OUTCOME: FAILED, TAG_REASON: KILLED_REASON})
            tracker.finish("KILLED")
            return
        with contextlib.suppress(Exception):  # the buffered writes failed: end it anyway
            tracker.client.set_terminated(tracker.run_id, status="KILLED")


_DRAWN = ".drawn"  # inside a logged folder: its PNGs, drawn after the end, logged at the root


def _exists(uri: str) -> bool:
    """Whether opening ``uri`` now creates nothing: a server, or a sqlite file already there (a
    config that fails must leave no ``mlflow.db`` behind, tests/test_cli.py)."""
    if uri.startswith(("http://", "https://")):
        return True
    prefix = "sqlite:///"
    return uri.startswith(prefix) and Path(uri[len(prefix) :]).exists()


_WHAT = {
    "open": "opening the store",
    "start": "creating the run",
    "metrics": "logging metrics",
    "tags": "setting tags",
    "artifacts": "logging the artifacts",
    "finish": "ending the run",
}


def quiet_logs() -> None:
    """MLflow and alembic log warnings only (rnnlab.commands.quiet_mlflow, which run/ may not
    import)."""
    import logging

    for name in ("mlflow", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)


def helper_main() -> None:
    """The helper process: ``python -c ... READ_FD WRITE_FD`` (SIGINT ignored: start_helper)."""
    inbox = Connection(int(sys.argv[1]), writable=False)
    answers = Connection(int(sys.argv[2]), readable=False)
    helper = _Helper(answers)
    while not helper.ended:
        try:
            message = inbox.recv()
        except (EOFError, OSError):
            helper.abandoned()
            break
        try:
            helper.handle(message)
        except OSError:  # the main process is gone mid-answer
            helper.abandoned()
            break
    # the run has ended and the main process has its answer: it returns now, and the PNGs
    # follow on their own, within the tracking timeout (SIGALRM ends a hung upload)
    for conn in (inbox, answers):
        conn.close()
    signal.alarm(max(1, round(float(os.environ.get("RNNLAB_TRACKING_TIMEOUT") or TIMEOUT_S))))
    helper.draw_figures()
    # everything is written (sqlite commits, HTTP calls returned): skip the interpreter's
    # teardown of MLflow, SQLAlchemy and matplotlib (1.7 s)
    sys.stderr.flush()
    os._exit(0)
