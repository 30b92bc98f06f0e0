"""What a run leaves behind: its readable name, tags, and artifact files.

Artifacts: ``config.yaml`` (the resolved config), ``gradient_flow.npz`` (probe step x layer x
time step: ``norms``, the total curve ||dL/dh_t||, and ``target_norms``, the target curve
||dL_target/dh_t||, rnnlab.run's probes), ``gradient_flow.png`` and ``gradient_flow_target.png``
(heatmaps of the two, log scale; the second only where the curves differ, so not on a last-step
task, where it would be the first again at ~0.1 s a run), ``gradient_flow_curves.png`` (first and
last total curve), ``dynamics.npz`` and ``lyapunov.png`` (each layer's Lyapunov spectra,
rnnlab.run._dynamics), ``model.pt`` (the final weights and the resolved config: ``rnnlab
dynamics RUN_ID`` rebuilds the model from it) and ``summary.json``.
"""

from __future__ import annotations

import contextlib
import json
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from rnnlab._names import (
    CONFIG_FILE,
    DYNAMICS_FILE,
    FAILED,
    FLOW_ARRAYS,
    FLOW_FILE,
    LYAPUNOV_PNG,
    MODEL_FILE,
    NO_REMEDY,
    SELECTION,
    SUMMARY_FILE,
    TAG_SOURCE,
    TAG_VERSION,
    TRACEBACK_FILE,
    VERSION,
    run_tags,
)
from rnnlab.run._probe import FlowRecorder

if TYPE_CHECKING:
    from torch import Tensor

    from rnnlab.base import Dataset
    from rnnlab.run._config import ResolvedRun
    from rnnlab.run._dynamics import DynamicsRecorder
    from rnnlab.run._result import RunResult


def remedy_label(run: ResolvedRun) -> str:
    return ",".join(r.name for r in run.remedies) or NO_REMEDY


def run_name(run: ResolvedRun, dataset: Dataset) -> str:
    """A name a person can read: ``lstm+clip adding T=100 s0``."""
    cell = "+".join([run.cell.name, *(r.name for r in run.remedies)])
    return f"{cell} {dataset.label()} s{run.config.seed}"


def tags(run: ResolvedRun, device: str) -> dict[str, str]:
    """The tags a run starts with (:func:`rnnlab._names.run_tags`), its version, source and
    selection rule."""
    names = [r.name for r in run.remedies]
    return {
        **run_tags(run.cell.name, run.dataset.name, names, run.config.seed, device),
        TAG_VERSION: VERSION,
        TAG_SOURCE: run.source,
        SELECTION: run.config.train.select,
    }


@contextlib.contextmanager
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rnnlab-") as name:
        yield Path(name)


def write(
    out: Path,
    run: ResolvedRun,
    result: RunResult,
    recorder: FlowRecorder,
    device: str,
    dynamics: DynamicsRecorder | None = None,
    defer_figures: bool = False,
) -> None:
    """Write every artifact of a finished run into ``out`` (``model.pt``: :func:`save_model`)."""
    import torch

    from rnnlab.run import _drawing as drawing
    from rnnlab.run import _figures as plots

    (out / CONFIG_FILE).write_text(yaml.safe_dump(run.as_dict(), sort_keys=False))
    flow, target = recorder.array(), recorder.target_array()
    values = (np.asarray(recorder.steps, dtype=np.int64), flow, flow <= 0.0, target)
    arrays: dict[str, Any] = dict(zip(FLOW_ARRAYS, values, strict=True))
    np.savez_compressed(out / FLOW_FILE, **arrays)
    remedies = "+".join(r.name for r in run.remedies) or "no remedy"
    title = f"{run.cell.name} ({remedies}) on {run.dataset.name}, seed {run.config.seed}"
    if flow.size and run.config.train.plots:  # defer_figures: the tracker draws them
        if defer_figures:
            drawing.order(out, title)
        else:
            drawing.draw_arrays(out, title, recorder.steps, flow, target)
    measured = dynamics.arrays() if dynamics is not None else {}
    if measured:
        np.savez_compressed(out / DYNAMICS_FILE, allow_pickle=False, **measured)
        if run.config.train.plots and defer_figures:
            drawing.order(out, title, drawing.LYAPUNOV)
        elif run.config.train.plots:
            steps = [int(s) for s in measured["steps"]]
            plots.lyapunov_spectra(steps, measured["exponents"], out / LYAPUNOV_PNG, title)
    summary = {
        "outcome": result.outcome,
        "steps_done": result.steps_done,
        "diverged_at": result.diverged_at,
        "message": result.message.splitlines()[0] if result.message else "",
        "seconds": round(result.seconds, 3),
        "metrics": result.metrics,
        "probe_steps": recorder.steps,
        "dynamics": {
            "steps": dynamics.steps if dynamics is not None else [],
            "seconds": round(dynamics.seconds, 3) if dynamics is not None else 0.0,
        },
        "selection": {"rule": run.config.train.select, "step": result.selected_step},
        "device": device,
        "versions": {
            "rnnlab": VERSION,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str))
    if result.outcome == FAILED:
        (out / TRACEBACK_FILE).write_text(result.message)


def save_model(out: Path, run: ResolvedRun, state: dict[str, Tensor], step: int) -> None:
    """``model.pt``: the weights ``state`` after ``step`` updates and the resolved config, on
    the CPU, so that any past run can be rebuilt and analysed again (``rnnlab dynamics``)."""
    import torch

    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
        "config": run.as_dict(),
        "step": step,
        "version": VERSION,
    }
    torch.save(payload, out / MODEL_FILE)
