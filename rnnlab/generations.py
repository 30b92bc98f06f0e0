"""Which study a sweep name means: generations (``NAME``, ``NAME#2``, ... after ``--fresh``), the
newest one, and a sweep opened by its file or name (for ``report`` and ``ui``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import optuna

from rnnlab.errors import ConfigError
from rnnlab.storage import storage_for

if TYPE_CHECKING:
    from rnnlab.sweepconfig import SweepPlan

DEFINITION = "rnnlab.definition"  # the resolved sweep file, stored with the study


def generation_name(name: str, generation: int) -> str:
    """A sweep's studies: ``name``, then ``name#2``, ``name#3``... (each ``--fresh`` start)."""
    return name if generation <= 1 else f"{name}#{generation}"


def latest_generation(storage: optuna.storages.BaseStorage, name: str) -> int:
    """The newest generation of sweep ``name`` in ``storage``; 0 when it has none."""
    names = set(optuna.study.get_all_study_names(storage))
    found = [1] if name in names else []
    found += [
        int(n.rsplit("#", 1)[1])
        for n in names
        if n.startswith(name + "#") and n.rsplit("#", 1)[1].isdigit()
    ]
    return max(found, default=0)


def load_latest(storage_url: str, name: str) -> optuna.Study:
    """The newest study of sweep ``name``; a ConfigError naming the sweeps there otherwise."""
    if "://" not in storage_url and not os.path.exists(storage_url):  # opening would create it
        raise ConfigError(
            f"no sweep {name!r}: {storage_url} does not exist (no sweep has run here); give "
            "--storage if the sweep was run with one, or run it from its folder"
        )
    storage = storage_for(storage_url)
    latest = latest_generation(storage, name)
    if latest == 0:
        known = ", ".join(sorted(optuna.study.get_all_study_names(storage))) or "none"
        raise ConfigError(
            f"no sweep {name!r} in {storage_url} (sweeps there: {known}); give the sweep's name "
            "or file, and --storage if it was run with one"
        )
    return optuna.load_study(study_name=generation_name(name, latest), storage=storage)


def sweep_name(target: str) -> str:
    """The sweep a command means: a sweep file's name (``name:`` or its stem), or ``target``."""
    from pathlib import Path

    from rnnlab.sources import load_yaml

    if Path(target).is_file():
        return str(load_yaml(target).data.get("name") or Path(target).stem)
    return target


def open_sweep(target: str, storage_url: str, registry: Any) -> tuple[optuna.Study, SweepPlan]:
    """A sweep by its file or its name: its newest study, and the plan it was created with."""
    from rnnlab.sweepconfig import plan_from_definition

    name = sweep_name(target)
    study = load_latest(storage_url, name)
    definition = study.user_attrs.get(DEFINITION)
    if definition is None:
        raise ConfigError(
            f"study {study.study_name!r} in {storage_url} was not made by rnnlab sweep"
        )
    return study, plan_from_definition(str(definition), registry, name)
