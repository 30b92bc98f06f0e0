"""Which study a sweep name means: generations (``NAME``, ``NAME#2``, ... after ``--fresh``), the
newest one, and a sweep opened by its file or name, with what ``report`` and ``ui`` read of it
(so that they need no optuna of their own)."""

from __future__ import annotations

import difflib
import os
from typing import TYPE_CHECKING, Any

import optuna

from rnnlab._names import DEFINITION
from rnnlab.errors import ConfigError
from rnnlab.sweep._storage import storage_for

if TYPE_CHECKING:
    from rnnlab.sweep._plan import SweepPlan


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


def study_name(
    storage: optuna.storages.BaseStorage, plan: SweepPlan, storage_url: str, fresh: bool
) -> str:
    """The study ``plan`` runs in: its newest generation, or a new one with ``fresh`` (the
    first: the sweep's name). A newest generation made from another definition is refused."""
    latest = latest_generation(storage, plan.name)
    if latest == 0:
        return plan.name
    name = generation_name(plan.name, latest)
    if fresh:
        return generation_name(plan.name, latest + 1)
    stored = optuna.load_study(study_name=name, storage=storage).user_attrs.get(DEFINITION)
    if stored is not None and stored != plan.definition:
        diff = difflib.unified_diff(
            stored.splitlines(), plan.definition.splitlines(), "stored", "now", n=0, lineterm=""
        )
        shown = [line for line in diff if not line.startswith("@@")][:24]
        raise ConfigError(
            f"sweep {plan.name!r} already exists in {storage_url} with a different "
            f"definition:\n  " + "\n  ".join(shown) + "\nRestore the file to resume it, or "
            "run with --fresh to start a new study (the old one is kept)."
        )
    return name


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


def sweep_names(storage_url: str) -> list[str]:
    """The sweeps in a storage, each once (``NAME`` for ``NAME``, ``NAME#2``, ...); none when
    the journal file does not exist (opening it would create it)."""
    if "://" not in storage_url and not os.path.exists(storage_url):
        return []
    names = optuna.study.get_all_study_names(storage_for(storage_url))
    return sorted({n.rsplit("#", 1)[0] if n.rsplit("#", 1)[-1].isdigit() else n for n in names})


def unfinished(study: optuna.Study) -> int:
    """How many of the study's trials are queued or running."""
    states = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
    return sum(t.state in states for t in study.get_trials(deepcopy=False))


def param_importances(study: optuna.Study) -> dict[str, float] | None:
    """Optuna's parameter importances for the objective (fANOVA), or None with fewer than two
    completed trials."""
    completed = [t for t in study.get_trials(deepcopy=False) if t.value is not None]
    if len(completed) < 2:
        return None
    return dict(optuna.importance.get_param_importances(study))


def optuna_version() -> str:
    return str(optuna.__version__)


def quiet_optuna() -> None:
    """Optuna logs warnings only (not every study it creates or trial it finishes)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def sweep_name(target: str) -> str:
    """The sweep a command means: a sweep file's name (``name:`` or its stem), or ``target``."""
    from pathlib import Path

    from rnnlab.run import load_yaml

    if Path(target).is_file():
        return str(load_yaml(target).data.get("name") or Path(target).stem)
    return target


def open_sweep(target: str, storage_url: str, registry: Any) -> tuple[optuna.Study, SweepPlan]:
    """A sweep by its file or its name: its newest study, and the plan it was created with."""
    from rnnlab.sweep._plan import plan_from_definition

    name = sweep_name(target)
    study = load_latest(storage_url, name)
    definition = study.user_attrs.get(DEFINITION)
    if definition is None:
        raise ConfigError(
            f"study {study.study_name!r} in {storage_url} was not made by rnnlab sweep"
        )
    return study, plan_from_definition(str(definition), registry, name)
