"""Storages: heartbeats for database storages, retries only for an unreachable database."""

from __future__ import annotations

import logging

import optuna
import pytest
import sqlalchemy.exc as sa

from rnnlab.sweep import RetryingRDBStorage, heartbeat_interval, redact, storage_for, with_retries


def test_the_password_is_masked_in_messages() -> None:
    assert redact("postgresql://rnnlab:s3cr:et@db:5432/optuna") == (
        "postgresql://rnnlab:***@db:5432/optuna"
    )
    assert redact("postgresql://rnnlab@db/optuna") == "postgresql://rnnlab@db/optuna"


def test_database_storages_beat_and_the_journal_does_not(tmp_path) -> None:
    journal = storage_for(str(tmp_path / "s.journal"))
    database = storage_for(f"sqlite:///{tmp_path / 's.db'}", heartbeat=7)
    assert heartbeat_interval(journal) is None
    assert isinstance(database, RetryingRDBStorage) and heartbeat_interval(database) == 7
    assert database.grace_period == 21
    assert heartbeat_interval(storage_for(f"sqlite:///{tmp_path / 't.db'}")) == 30


def unreachable() -> sa.OperationalError:
    return sa.OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


def test_an_unreachable_database_is_retried_and_said(caplog, monkeypatch) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)
    calls = []
    recovered = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise optuna.exceptions.StorageInternalError("lost") from unreachable()
        return "ok"

    url = "postgresql://u:pw@db/optuna"
    with caplog.at_level(logging.WARNING, logger="rnnlab"):
        assert with_retries(flaky, "tell", url, lambda: recovered.append(1))() == "ok"
    assert len(calls) == 3 and recovered == [1]
    messages = [r.getMessage() for r in caplog.records]
    assert "unreachable during tell" in messages[0] and "u:***@db" in messages[0]
    assert "pw" not in " ".join(messages) and "reachable again" in messages[-1]


def test_other_errors_are_not_retried_and_retries_end(monkeypatch) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)
    calls = []

    def broken() -> None:
        calls.append(1)
        raise sa.IntegrityError("INSERT", {}, ValueError("duplicate key"))

    with pytest.raises(sa.IntegrityError):
        with_retries(broken, "enqueue", "sqlite://")()
    assert len(calls) == 1

    def down() -> None:
        calls.append(1)
        raise unreachable()

    monkeypatch.setenv("RNNLAB_STORAGE_RETRY_S", "0")
    with pytest.raises(sa.OperationalError):
        with_retries(down, "ask", "sqlite://")()


def test_every_call_optunas_cached_storage_makes_is_retried() -> None:
    """Optuna wraps an RDBStorage in _CachedStorage, which calls some private methods of it:
    each of those must retry too, or an outage escapes through them."""
    import inspect
    import re

    from optuna.storages import _cached_storage

    called = set(re.findall(r"self\._backend\.(\w+)", inspect.getsource(_cached_storage)))
    assert called
    for name in called:
        assert name in vars(RetryingRDBStorage), f"{name} is not retried"


def test_a_database_still_unreachable_after_the_retries_stops_with_a_message(
    sweep_env, tmp_path, monkeypatch
) -> None:
    """No traceback: the storage, the driver's words and what to check (real CLI, real sqlite
    driver on a path through a regular file: 'unable to open database file')."""
    from click.testing import CliRunner
    from test_journal import SWEEP

    from rnnlab.cli import cli

    monkeypatch.setenv("RNNLAB_STORAGE_RETRY_S", "0")
    (tmp_path / "afile").write_text("not a folder")
    url = f"sqlite:///{tmp_path / 'afile' / 'optuna.db'}"
    (tmp_path / "sw.yaml").write_text(SWEEP)
    result = CliRunner().invoke(cli, ["sweep", "sw.yaml", "--storage", url])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert f"the Optuna storage {url} could not be reached" in result.output, result.output
    assert "unable to open database file" in result.output
    assert "RNNLAB_STORAGE_RETRY_S" in result.output
    assert "run the same command again" in result.output
