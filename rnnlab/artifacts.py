"""What a run leaves behind: its readable name, tags, and artifact files.

Artifacts: ``config.yaml`` (the resolved config), ``gradient_flow.npz`` (probe step x layer x
time step: ``norms``, the total curve ||dL/dh_t||, and ``target_norms``, the target curve
||dL_target/dh_t||, rnnlab.probe), ``gradient_flow.png`` and ``gradient_flow_target.png``
(heatmaps of the two, log scale; the second only where the curves differ, so not on a last-step
task, where it would be the first again at ~0.1 s a run), ``gradient_flow_curves.png`` (first and
last total curve) and ``summary.json``.
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

import rnnlab
from rnnlab._names import FLOW_ARRAYS, SELECTION
from rnnlab.probe import FlowRecorder

if TYPE_CHECKING:
    from rnnlab.base import Dataset
    from rnnlab.config import ResolvedRun
    from rnnlab.train import RunResult


def remedy_label(run: ResolvedRun) -> str:
    return ",".join(r.name for r in run.remedies) or "none"


def run_name(run: ResolvedRun, dataset: Dataset) -> str:
    """A name a person can read: ``lstm+clip adding T=100 s0``."""
    cell = "+".join([run.cell.name, *(r.name for r in run.remedies)])
    return f"{cell} {dataset.label()} s{run.config.seed}"


def tags(run: ResolvedRun, device: str) -> dict[str, str]:
    return {
        "rnnlab.cell": run.cell.name,
        "rnnlab.dataset": run.dataset.name,
        "rnnlab.remedies": remedy_label(run),
        "rnnlab.seed": str(run.config.seed),
        "rnnlab.outcome": "running",
        "rnnlab.device": device,
        "rnnlab.version": rnnlab.__version__,
        "rnnlab.source": run.source,
        SELECTION: run.config.train.select,
    }


@contextlib.contextmanager
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rnnlab-") as name:
        yield Path(name)


def write(
    out: Path, run: ResolvedRun, result: RunResult, recorder: FlowRecorder, device: str
) -> None:
    """Write every artifact of a finished run into ``out``."""
    import torch

    from rnnlab import plots

    (out / "config.yaml").write_text(yaml.safe_dump(run.as_dict(), sort_keys=False))
    flow, target = recorder.array(), recorder.target_array()
    values = (np.asarray(recorder.steps, dtype=np.int64), flow, flow <= 0.0, target)
    arrays: dict[str, Any] = dict(zip(FLOW_ARRAYS, values, strict=True))
    np.savez_compressed(out / "gradient_flow.npz", **arrays)
    remedies = "+".join(r.name for r in run.remedies) or "no remedy"
    title = f"{run.cell.name} ({remedies}) on {run.dataset.name}, seed {run.config.seed}"
    if flow.size and run.config.train.plots:
        plots.flow_heatmap(recorder.steps, flow, out / "gradient_flow.png", title)
        if not np.array_equal(target, flow):  # on a last-step task it is gradient_flow.png
            aim = f"{title}: target steps' loss"
            path = out / "gradient_flow_target.png"
            plots.flow_heatmap(recorder.steps, target, path, aim, plots.TARGET)
        plots.flow_curves(recorder.steps, flow, out / "gradient_flow_curves.png", title)
    summary = {
        "outcome": result.outcome,
        "steps_done": result.steps_done,
        "diverged_at": result.diverged_at,
        "message": result.message.splitlines()[0] if result.message else "",
        "seconds": round(result.seconds, 3),
        "metrics": result.metrics,
        "probe_steps": recorder.steps,
        "selection": {"rule": run.config.train.select, "step": result.selected_step},
        "device": device,
        "versions": {
            "rnnlab": rnnlab.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if result.outcome == "failed":
        (out / "traceback.txt").write_text(result.message)
