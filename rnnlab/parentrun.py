"""A sweep's MLflow parent run: opened once per study (by the coordinator that created the study;
the others join it), closed with the outcome table when the sweep is done."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from rnnlab import summary
from rnnlab.study import PARENT, TRACKING_URI, SweepStudy
from rnnlab.sweepconfig import SweepPlan, label
from rnnlab.tracking import MlflowTracker
from rnnlab.workers import Slot

PARENT_WAIT_S = 60.0  # how long a joining coordinator waits for the founder's parent run


def open_parent(
    parent: MlflowTracker, plan: SweepPlan, study: SweepStudy, slots: list[Slot]
) -> None:
    """Attach ``parent`` to the study's parent run, or start it (and record it in the study)."""
    run_id = study.study.user_attrs.get(PARENT)
    if not run_id and not study.founder:  # the founder is opening it right now
        deadline = time.monotonic() + PARENT_WAIT_S
        while not run_id and time.monotonic() < deadline:
            time.sleep(0.5)
            run_id = study.study.user_attrs.get(PARENT)
    if run_id and parent.attach(str(run_id), reopen=True):
        return
    section = plan.section
    params = {
        "sampler": section.sampler,
        "trials": str(plan.total),
        "seeds": ",".join(map(str, section.seeds)),
        "objective": f"{section.objective.direction} {section.objective.metric}",
        "pruner": section.pruner,
        "storage": study.storage_url,
        "slots": ",".join(s.label() for s in slots),
        **{
            f"space.{k}": ", ".join(label(v) for v in vs) if isinstance(vs, list) else str(vs)
            for k, vs in section.space.items()
        },
    }
    tags = {"rnnlab.sweep": study.name, "rnnlab.role": "sweep"}
    parent.start(plan.name, f"sweep {study.name}", tags, params)
    study.study.set_user_attr(PARENT, parent.run_id)
    study.study.set_user_attr(TRACKING_URI, parent.tracking_uri)
    with tempfile.TemporaryDirectory() as folder:
        if plan.source.path is not None:
            shutil.copy(plan.source.path, Path(folder) / "sweep.yaml")
        (Path(folder) / "sweep-resolved.yaml").write_text(plan.definition)
        parent.log_artifacts(Path(folder))


def close_parent(
    parent: MlflowTracker, plan: SweepPlan, study: SweepStudy, best: float | None
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Log the outcome counts, the best objective and the outcome table; finish the run."""
    trials = study.finished()
    table = summary.rows(plan, trials)
    counts = summary.counts(trials)
    metrics = {f"sweep/{name}": float(counts.get(name, 0)) for name in summary.OUTCOME_NAMES}
    if best is not None:
        metrics["sweep/best"] = best
    parent.log_metrics(metrics, step=0)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "summary.md").write_text(summary.markdown(plan, table))
        (Path(folder) / "summary.yaml").write_text(yaml.safe_dump(table, sort_keys=False))
        parent.log_artifacts(Path(folder))
    parent.finish("FINISHED")
    return table, counts
