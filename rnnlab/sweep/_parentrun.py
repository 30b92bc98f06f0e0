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

from rnnlab._names import (
    OUTCOMES,
    PARENT,
    ROLE_SWEEP,
    SWEEP_BEST,
    SWEEP_FILE,
    SWEEP_METRIC,
    SWEEP_RESOLVED,
    TABLE_MD,
    TABLE_YAML,
    TAG_ROLE,
    TAG_SWEEP,
    TRACKING_URI,
)
from rnnlab.errors import ArtifactError
from rnnlab.run import MlflowTracker
from rnnlab.sweep._plan import SweepPlan, label
from rnnlab.sweep._study import SweepStudy
from rnnlab.sweep._table import outcome_counts, outcome_table, table_markdown
from rnnlab.sweep._workers import Slot

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
    tags = {TAG_SWEEP: study.name, TAG_ROLE: ROLE_SWEEP}
    parent.start(plan.name, f"sweep {study.name}", tags, params)
    study.study.set_user_attr(PARENT, parent.run_id)
    study.study.set_user_attr(TRACKING_URI, parent.tracking_uri)
    with tempfile.TemporaryDirectory() as folder:
        if plan.source.path is not None:
            shutil.copy(plan.source.path, Path(folder) / SWEEP_FILE)
        (Path(folder) / SWEEP_RESOLVED).write_text(plan.definition)
        try:
            parent.log_artifacts(Path(folder))
        except ArtifactError:  # nothing ran yet: stop, the parent run closed, not RUNNING
            parent.finish("FAILED")
            raise


def close_parent(
    parent: MlflowTracker, plan: SweepPlan, study: SweepStudy, best: float | None
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Log the outcome counts, the best objective and the outcome table; finish the run."""
    trials = study.finished()
    table = outcome_table(plan, trials)
    counts = outcome_counts(trials)
    metrics = {SWEEP_METRIC + name: float(counts.get(name, 0)) for name in OUTCOMES}
    if best is not None:
        metrics[SWEEP_BEST] = best
    parent.log_metrics(metrics, step=0)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / TABLE_MD).write_text(table_markdown(plan, table))
        (Path(folder) / TABLE_YAML).write_text(yaml.safe_dump(table, sort_keys=False))
        try:
            parent.log_artifacts(Path(folder))
        except ArtifactError:  # every trial is recorded; the same command writes the table
            parent.finish("FAILED")
            raise
    parent.finish("FINISHED")
    return table, counts
