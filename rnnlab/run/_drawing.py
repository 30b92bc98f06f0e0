"""A run's gradient-flow figures drawn from its saved arrays, where drawing holds nothing up.

``rnnlab.run._artifacts.write`` draws the PNGs in the training process, or, when the tracker
says it draws them itself (``draws_figures``), leaves an order (:data:`ORDER_FILE`: the title)
beside ``gradient_flow.npz``, and whoever logs the folder fulfils it first (:func:`fulfil`):

* ``rnnlab run``: the MLflow helper process (rnnlab.run._background), after the run has ended
  and the main process has returned: the PNGs follow into the ended run;
* a sweep: the coordinator hands the folder to a :class:`Drawer` process and logs it when the
  PNGs are there, so neither the slot nor the coordinator's message loop waits for matplotlib
  (docs/performance.md: the PNGs were 4.6% of a sweep trial, the goal for all tracking is 2%).

The figures are the same as when drawn inline: :func:`draw_arrays` is the one place that draws
them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnlab._names import (
    DYNAMICS_FILE,
    FLOW_CURVES_PNG,
    FLOW_FILE,
    FLOW_PNG,
    FLOW_TARGET_PNG,
    LYAPUNOV_PNG,
)

if TYPE_CHECKING:
    import numpy as np

ORDER_FILE = ".rnnlab-figures.json"
"""In an artifact folder: the figures still to draw and their title; never logged."""
FLOW, LYAPUNOV = "flow", "lyapunov"
"""The figures of gradient_flow.npz (its PNGs) and of dynamics.npz (lyapunov.png)."""


def draw_arrays(
    out: Path, title: str, steps: list[int], flow: np.ndarray, target: np.ndarray
) -> None:
    """The PNGs of ``out`` (heatmaps of the total and target curves, first/last curves)."""
    import numpy as np

    from rnnlab.run import _figures as plots

    plots.flow_heatmap(steps, flow, out / FLOW_PNG, title)
    if not np.array_equal(target, flow):  # on a last-step task it is gradient_flow.png
        aim = f"{title}: target steps' loss"
        plots.flow_heatmap(steps, target, out / FLOW_TARGET_PNG, aim, plots.TARGET)
    plots.flow_curves(steps, flow, out / FLOW_CURVES_PNG, title)


def order(out: Path, title: str, figures: str = FLOW) -> None:
    """Leave ``figures`` (:data:`FLOW` or :data:`LYAPUNOV`) of ``out`` to whoever logs it
    (:func:`fulfil`); orders add up."""
    path = out / ORDER_FILE
    wanted: dict[str, Any] = {"title": title, "figures": []}
    if path.exists():
        wanted = json.loads(path.read_text())
    wanted["figures"].append(figures)
    path.write_text(json.dumps(wanted))


def log_files(tracker: Any, out: Path) -> bool:
    """Log ``out``'s files into ``tracker``'s run now, its figure order left out of the upload and
    kept in place: True when figures are ordered (``out`` is the caller's, to draw with
    :func:`fulfil` and delete); False when none are (``out`` deleted). On a failure ``out`` is
    deleted and the error propagates (an unwritable location is the tracker's ArtifactError)."""
    import shutil

    path = out / ORDER_FILE
    try:
        wanted = path.read_bytes() if path.exists() else None
        path.unlink(missing_ok=True)  # an order is never logged
        tracker.log_artifacts(out)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    if wanted is None:
        shutil.rmtree(out, ignore_errors=True)
        return False
    path.write_bytes(wanted)
    return True


def fulfil(out: Path) -> bool:
    """Draw the figures ordered in ``out`` from its saved arrays; False if none were ordered."""
    path = out / ORDER_FILE
    if not path.exists():
        return False
    import numpy as np

    wanted = json.loads(path.read_text())
    title = str(wanted["title"])
    if FLOW in wanted["figures"]:
        with np.load(out / FLOW_FILE) as saved:
            steps = [int(s) for s in saved["steps"]]
            flow, target = saved["norms"], saved["target_norms"]
        draw_arrays(out, title, steps, flow, target)
    if LYAPUNOV in wanted["figures"]:
        from rnnlab.run import _figures as plots

        with np.load(out / DYNAMICS_FILE) as saved:
            steps = [int(s) for s in saved["steps"]]
            plots.lyapunov_spectra(steps, saved["exponents"], out / LYAPUNOV_PNG, title)
    path.unlink()
    return True


def warm() -> None:
    """Import matplotlib and set its backend now (~0.5 s), not when the first figure is due."""
    from rnnlab.run._figures import pyplot

    pyplot()


class Drawer:
    """A process that fulfils the figure orders of the folders it is given, in order.

    Started on first use (:func:`start_helper`: Ctrl-C is the sweep's to handle). One folder
    path per line in; ``ok PATH`` or ``error PATH: why`` per line out.
    """

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self._partial = b""

    def _started(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.process.poll() is not None:
            code = "from rnnlab.run._drawing import serve; serve()"
            self.process = start_helper(code, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self._partial = b""
        return self.process

    def submit(self, folder: Path) -> None:
        process = self._started()
        assert process.stdin is not None
        process.stdin.write(f"{folder}\n".encode())
        process.stdin.flush()

    def fileno(self) -> int | None:
        """What to wait on for answers (None before the first folder)."""
        if self.process is None or self.process.stdout is None:
            return None
        return self.process.stdout.fileno()

    def answers(self) -> list[tuple[Path, str | None]]:
        """The folders drawn since the last call (call when :meth:`fileno` is readable): each
        with None, or why it failed. A drawer that died fails nothing here: see
        :attr:`alive`."""
        fd = self.fileno()
        if fd is None:
            return []
        chunk = os.read(fd, 65536)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        done: list[tuple[Path, str | None]] = []
        for line in lines:
            text = line.decode(errors="replace")
            if text.startswith("ok "):
                done.append((Path(text[3:]), None))
            elif text.startswith("error "):
                where, _, why = text[6:].partition(": ")
                done.append((Path(where), why))
        return done

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_helper(code: str, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """``sys.executable -c code args`` with SIGINT ignored: Ctrl-C (SIGINT to the terminal's
    whole process group) is the main process's to handle. Ignored in the parent around the
    fork when this is the main thread (an ignored signal stays ignored through exec, and Python
    then installs no KeyboardInterrupt handler), and by the code's first statement anyway (no
    ``preexec_fn``: it can deadlock a process with threads)."""
    full = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); " + code
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        return subprocess.Popen([sys.executable, "-c", full, *args], **popen)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous or signal.default_int_handler)


def serve() -> None:
    """The :class:`Drawer` process: fulfil each folder named on stdin until EOF."""
    warm()
    for line in sys.stdin:
        folder = Path(line.rstrip("\n"))
        try:
            fulfil(folder)
            answer = f"ok {folder}"
        except Exception as exc:  # one bad folder must not stop the sweep's other figures
            why = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            answer = f"error {folder}: {why}"
        sys.stdout.write(answer + "\n")
        sys.stdout.flush()
