"""Each private part of Optuna that rnnlab relies on (rnnlab/sweep/_optuna.py), named.

An Optuna release that renames or drops one fails here, by name, rather than in a sweep.
"""

from __future__ import annotations

import inspect
import re
import warnings

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution

from rnnlab.sweep import _optuna


def test_trial_id_is_the_storage_key_of_trial_and_frozen_trial() -> None:
    study = optuna.create_study()
    study.ask()
    trial = study.ask()
    assert isinstance(trial._trial_id, int) and _optuna.trial_id(trial) == trial._trial_id
    frozen = study.get_trials()[1]
    assert _optuna.trial_id(frozen) == frozen._trial_id == trial._trial_id
    assert study._storage.get_trial(_optuna.trial_id(trial)).number == 1


def test_suggest_draws_from_a_distribution_object_and_honours_an_enqueued_value() -> None:
    assert callable(optuna.trial.Trial._suggest)
    study = optuna.create_study()
    study.enqueue_trial({"lr": 0.5, "cell": "gru"})
    trial = study.ask()
    assert _optuna.suggest(trial, "lr", FloatDistribution(0.1, 1.0)) == 0.5
    assert _optuna.suggest(trial, "cell", CategoricalDistribution(["rnn", "gru"])) == "gru"
    assert set(trial.params) == {"lr", "cell"}


def test_heartbeat_interval_reads_optunas_private_heartbeat_check(tmp_path) -> None:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    plain = optuna.storages.InMemoryStorage()
    assert not is_heartbeat_enabled(plain) and _optuna.heartbeat_interval(plain) is None
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        beating = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat_interval=7)
    assert _optuna.heartbeat_interval(beating) == 7


def test_the_cached_storage_calls_exactly_these_private_methods() -> None:
    from optuna.storages import RDBStorage
    from optuna.storages._cached_storage import _CachedStorage

    called = set(re.findall(r"self\._backend\.(_[a-z_]+)\(", inspect.getsource(_CachedStorage)))
    assert called == _optuna.CACHED_STORAGE_CALLS
    assert all(callable(getattr(RDBStorage, name)) for name in called)
