"""Drawing the report's figures fast: in parallel processes, and only when what they show changed.

Profiling ``rnnlab report`` on the flagship (docs/report.md) put most of its time in matplotlib
(the gradient-flow and spectra grids: one panel per combination), not in reading MLflow. Two
things here cut that without changing a figure:

- :func:`draw_all` draws the figures in forked processes (one per core, the largest first):
  each child inherits the read sweep and the imported matplotlib, draws one figure to its PNG,
  and returns the path. Where ``fork`` is not available (Windows, macOS's default is ``spawn``
  and the data would have to be pickled) or there is one core, they are drawn in turn.
- :func:`inputs_digest` is a SHA-256 of everything the figures are drawn from (the plan, the
  outcome table, every trial's settings, outcome, histories, curves and spectra, the trials'
  parameters for the importances) and of the code that draws them (these modules' sources,
  rnnlab's and matplotlib's versions). A folder whose ``.figures.json`` holds the same digest and
  whose PNGs are all there keeps them: a second report of a finished sweep draws nothing. The
  key is the content itself, not the runs' end times, so nothing it reuses can be stale: a
  trial that finished since, a run re-read with other values, or an edited figure function
  changes the digest and everything is drawn again.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab._names import VERSION
from rnnlab.report._data import ReportData

Job = Callable[[], Path | None]
"""Draws one figure to its PNG; None when the figure does not apply to the sweep."""

CACHE = ".figures.json"
"""Beside the PNGs: the digest they were drawn from and which files it made."""

_PENDING: list[Job] = []  # the jobs a forked child picks from (inherited, never pickled)


def _draw_one(index: int) -> str | None:
    made = _PENDING[index]()
    return None if made is None else str(made)


def processes_for(jobs: int) -> int:
    """One drawing process per core the report may use, at most one per figure."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(jobs, cores))


def draw_all(
    jobs: Sequence[Job], processes: int | None = None, weights: Sequence[int] = ()
) -> list[Path | None]:
    """Run ``jobs`` (in ``processes`` forked processes, default :func:`processes_for`; 1: in
    this process) and return what each made, in the jobs' order. ``weights`` (optional, one per
    job) orders the work: the heaviest figure starts first."""
    count = processes if processes is not None else processes_for(len(jobs))
    if count < 2 or len(jobs) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [job() for job in jobs]
    from rnnlab.run import pyplot

    pyplot()  # matplotlib imported once, before the fork: the children inherit it
    order = sorted(range(len(jobs)), key=lambda i: -(weights[i] if weights else 0))
    _PENDING[:] = jobs
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(count, mp_context=context) as pool:
            made = dict(zip(order, pool.map(_draw_one, order), strict=True))
    finally:
        _PENDING.clear()
    return [None if made[i] is None else Path(str(made[i])) for i in range(len(jobs))]


def _code() -> list[bytes]:
    """The sources of the modules that decide what a figure looks like (read as files: this
    module is below rnnlab.report._page, which imports it)."""
    import sys

    from rnnlab.run import pyplot

    here = Path(__file__).parent
    files = [here / name for name in ("_figures.py", "_dynamics_figures.py", "_page.py")]
    files.append(Path(str(sys.modules[pyplot.__module__].__file__)))  # rnnlab.run's figures
    return [f.read_bytes() for f in files]


def _array(digest: Any, array: np.ndarray | None) -> None:
    if array is None:
        digest.update(b"none")
        return
    value = np.ascontiguousarray(array)
    digest.update(f"{value.dtype}{value.shape}".encode())
    digest.update(value.tobytes())


def inputs_digest(data: ReportData) -> str:
    """SHA-256 of what the figures of ``data`` are drawn from (see the module's docstring)."""
    import matplotlib

    digest = hashlib.sha256()
    for part in _code():
        digest.update(part)
    head = [VERSION, matplotlib.__version__, data.plan.definition, data.table, data.axes]
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    for t in data.trials:
        fields = [t.number, t.labels, t.seed, t.outcome, t.value, t.run_id]
        fields += [t.objective, t.ratio, t.target_ratio]
        digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
        for array in (t.flow_steps, t.flow, t.target_flow):
            _array(digest, array)
        spectra = t.spectra
        _array(digest, None if spectra is None else spectra.first)
        _array(digest, None if spectra is None else spectra.last)
        digest.update(str(None if spectra is None else spectra.last_step).encode())
    if data.plan.section.sampler != "grid":  # the importances read the study's trials
        trials = [(t.number, t.params, t.value, str(t.state)) for t in data.study.trials]
        digest.update(json.dumps(trials, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def reusable(out: Path, digest: str) -> list[Path] | None:
    """The PNGs in ``out`` drawn from ``digest`` when all of them are still there, else None."""
    try:
        saved = json.loads((out / CACHE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("digest") != digest:
        return None
    files = [out / str(name) for name in saved.get("files", [])]
    return files if all(f.is_file() for f in files) else None


def remember(out: Path, digest: str, files: list[Path]) -> None:
    """Note which PNGs ``digest`` made (for :func:`reusable`)."""
    text = json.dumps({"digest": digest, "files": [f.name for f in files]}, indent=1)
    (out / CACHE).write_text(text + "\n")
