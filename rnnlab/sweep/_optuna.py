"""Every private part of Optuna that rnnlab relies on, in one place.

Optuna's public API has no trial id (the storage's key, which heartbeats and state changes need),
no way to suggest a value from a distribution object, and no public test whether a storage keeps
heartbeats; its ``_CachedStorage`` calls private methods of the ``RDBStorage`` it wraps, which the
retrying storage must wrap too. tests/test_optuna_adapter.py names each of them, so an Optuna
release that changes one fails there, by name, rather than somewhere in a sweep.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, Trial

CACHED_STORAGE_CALLS = frozenset(
    {
        "_create_new_trial",
        "_get_best_trial_id",
        "_get_stale_trial_ids",
        "_get_trials",
        "_set_trial_param",
    }
)
"""The private methods of ``RDBStorage`` that Optuna's ``_CachedStorage`` (which wraps every
``RDBStorage``) calls directly: the retrying storage retries them like the public ones."""


def trial_id(trial: Trial | FrozenTrial) -> int:
    """The storage's id of a trial (``Trial._trial_id``, ``FrozenTrial._trial_id``); not its
    number, which counts within one study."""
    return int(trial._trial_id)


def suggest(trial: Trial, name: str, distribution: BaseDistribution) -> Any:
    """``trial``'s value of parameter ``name`` drawn from ``distribution`` (``Trial._suggest``,
    what every ``suggest_*`` calls): a WAITING trial's enqueued value, else the sampler's."""
    return trial._suggest(name, distribution)


def heartbeat_interval(storage: optuna.storages.BaseStorage) -> int | None:
    """Seconds between heartbeats when ``storage`` keeps them, else None
    (``optuna.storages._heartbeat.is_heartbeat_enabled``)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    if not is_heartbeat_enabled(storage):
        return None
    return int(storage.get_heartbeat_interval())  # type: ignore[attr-defined]
