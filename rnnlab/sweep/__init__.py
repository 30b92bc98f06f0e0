"""Many runs: a sweep file's plan, its Optuna study, the worker processes and the coordinator
that is the single writer to Optuna and MLflow, and the outcome table.

The only package that imports optuna; it uses ``rnnlab.run`` and never ``rnnlab.report`` or
``rnnlab.commands`` (tests/test_layers.py). Each name is imported from its private module on
first use (as ``rnnlab`` does): a worker process loads neither optuna nor mlflow, and
``rnnlab ui`` finds a sweep's stores without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_MODULES = {
    "_options": ("SweepOptions", "default_storage"),
    "_plan": (
        "OBJECTIVES",
        "Objective",
        "Point",
        "Range",
        "SweepPlan",
        "SweepSection",
        "describe_space",
        "encode",
        "label",
        "load_sweep",
        "objective_value",
        "plan_from_definition",
        "plan_from_source",
        "point_key",
    ),
    "_storage": (
        "DEFAULT_HEARTBEAT",
        "Heartbeat",
        "RetryingRDBStorage",
        "redact",
        "storage_for",
        "with_retries",
    ),
    "_optuna": ("heartbeat_interval",),
    "_journal": ("check_journal", "open_journal"),
    "_generations": (
        "generation_name",
        "group_records",
        "latest_generation",
        "load_latest",
        "open_sweep",
        "optuna_version",
        "param_importances",
        "quiet_optuna",
        "study_name",
        "sweep_name",
        "sweep_names",
        "unfinished",
    ),
    "_study": ("STATE_OF", "SweepStudy", "Task"),
    "_workers": ("Active", "Slot", "Worker", "cpu_cores", "plan_slots", "visible_gpus"),
    "_coordinator": ("Sweep", "SweepInterrupted", "SweepResult", "SweepState"),
    "_records": ("TrialRecord", "trial_record", "trial_records"),
    "_table": (
        "group_records",
        "outcome_counts",
        "outcome_table",
        "table_axes",
        "table_cells",
        "table_header",
        "table_markdown",
    ),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}
__all__ = [
    "Active",
    "DEFAULT_HEARTBEAT",
    "Heartbeat",
    "OBJECTIVES",
    "Objective",
    "Point",
    "Range",
    "RetryingRDBStorage",
    "STATE_OF",
    "Slot",
    "Sweep",
    "SweepInterrupted",
    "SweepOptions",
    "SweepPlan",
    "SweepResult",
    "SweepSection",
    "SweepState",
    "SweepStudy",
    "Task",
    "TrialRecord",
    "Worker",
    "check_journal",
    "cpu_cores",
    "default_storage",
    "describe_space",
    "encode",
    "generation_name",
    "group_records",
    "heartbeat_interval",
    "label",
    "latest_generation",
    "load_latest",
    "load_sweep",
    "objective_value",
    "open_sweep",
    "open_journal",
    "optuna_version",
    "outcome_counts",
    "outcome_table",
    "param_importances",
    "plan_from_definition",
    "plan_from_source",
    "plan_slots",
    "point_key",
    "quiet_optuna",
    "redact",
    "storage_for",
    "study_name",
    "sweep_name",
    "sweep_names",
    "table_axes",
    "table_cells",
    "table_header",
    "table_markdown",
    "trial_record",
    "trial_records",
    "unfinished",
    "visible_gpus",
    "with_retries",
]

if TYPE_CHECKING:
    from rnnlab.sweep._coordinator import Sweep, SweepInterrupted, SweepResult, SweepState
    from rnnlab.sweep._generations import (
        generation_name,
        latest_generation,
        load_latest,
        open_sweep,
        optuna_version,
        param_importances,
        quiet_optuna,
        study_name,
        sweep_name,
        sweep_names,
        unfinished,
    )
    from rnnlab.sweep._journal import check_journal, open_journal
    from rnnlab.sweep._options import SweepOptions, default_storage
    from rnnlab.sweep._optuna import heartbeat_interval
    from rnnlab.sweep._plan import (
        OBJECTIVES,
        Objective,
        Point,
        Range,
        SweepPlan,
        SweepSection,
        describe_space,
        encode,
        label,
        load_sweep,
        objective_value,
        plan_from_definition,
        plan_from_source,
        point_key,
    )
    from rnnlab.sweep._records import TrialRecord, trial_record, trial_records
    from rnnlab.sweep._storage import (
        DEFAULT_HEARTBEAT,
        Heartbeat,
        RetryingRDBStorage,
        redact,
        storage_for,
        with_retries,
    )
    from rnnlab.sweep._study import STATE_OF, SweepStudy, Task
    from rnnlab.sweep._table import (
        group_records,
        outcome_counts,
        outcome_table,
        table_axes,
        table_cells,
        table_header,
        table_markdown,
    )
    from rnnlab.sweep._workers import Active, Slot, Worker, cpu_cores, plan_slots, visible_gpus
else:

    def __getattr__(name: str) -> Any:
        module = _WHERE.get(name)
        if module is None:
            raise AttributeError(f"module 'rnnlab.sweep' has no attribute {name!r}")
        value = getattr(importlib.import_module(f"rnnlab.sweep.{module}"), name)
        globals()[name] = value
        return value
