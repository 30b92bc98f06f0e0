"""Optuna storages for sweeps: a journal file (one machine, no server) or a database (several).

A database storage (``sqlite:///...``, ``postgresql://...``) gets two things Optuna's plain one
lacks for a sweep that spans machines:

* heartbeats: every coordinator records one for each trial it runs (:class:`Heartbeat`, a
  thread); a trial whose heartbeat is older than the grace period belongs to a coordinator that
  is gone, and any other coordinator fails it and runs it again;
* retries: a storage call that fails because the database cannot be reached (a server restart,
  a dropped connection) is retried with exponential backoff, with a warning naming the storage,
  the error and the next wait, for up to ``RNNLAB_STORAGE_RETRY_S`` seconds (default 300);
* safe founding: any number of machines may open an empty database at the same moment. Optuna's
  schema creation (``CREATE TYPE``/``CREATE TABLE``, the version row, Alembic's stamp) is not
  atomic and a second founder dies on PostgreSQL's ``UniqueViolation`` (issue 18). On PostgreSQL
  it runs under a session-level advisory lock (``pg_advisory_lock``, :func:`founders_lock`) on a
  connection of its own, so founders take turns; on any database, "already exists" during schema
  creation means another founder won the race, and the schema is read again
  (:func:`_another_founder`). Two founders creating the same study are settled by the study
  name's unique constraint (Optuna's ``DuplicatedStudyError``: the loser loads the study).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial

from rnnlab.errors import StorageError
from rnnlab.sweep._optuna import CACHED_STORAGE_CALLS

log = logging.getLogger("rnnlab")
T = TypeVar("T")

DEFAULT_HEARTBEAT = 30  # seconds between heartbeats; a trial is stale after 3 missed ones


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


def _retry_budget() -> float:
    return float(os.environ.get("RNNLAB_STORAGE_RETRY_S", "300"))


def _unreachable(exc: BaseException) -> BaseException | None:
    """The error in ``exc``'s chain that means the database could not be reached (worth
    retrying), or None for a genuine error (a constraint, a finished trial, a bad query)."""
    import sqlalchemy.exc as sa

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sa.DBAPIError) and seen.connection_invalidated:
            return seen
        if isinstance(seen, sa.OperationalError | sa.InterfaceError | sa.DisconnectionError):
            return seen
        if isinstance(seen, sa.PendingRollbackError):  # a session a dropped connection broke
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


FOUNDERS_LOCK = 0x726E6E6C  # "rnnl": the advisory lock key founders of an empty schema take


def _another_founder(exc: BaseException) -> bool:
    """Whether ``exc`` from schema creation means another process created the object first."""
    import sqlalchemy.exc as sa

    if not isinstance(exc, sa.IntegrityError | sa.ProgrammingError):
        return False
    text = str(exc).lower()
    return any(w in text for w in ("already exists", "duplicate", "unique"))


@contextlib.contextmanager
def founders_lock(url: str) -> Iterator[None]:
    """Hold PostgreSQL's advisory lock :data:`FOUNDERS_LOCK` while the block runs (on its own
    connection, released when the block ends or the connection drops); other databases: nothing
    (see the module docstring)."""
    if not url.startswith(("postgresql", "postgres:")):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": FOUNDERS_LOCK})
            connection.commit()
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # a dropped connection released it already
                    connection.execute(
                        sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": FOUNDERS_LOCK}
                    )
                    connection.commit()
    finally:
        engine.dispose()


def with_retries(
    call: Callable[..., T],
    what: str,
    url: str,
    on_recovered: Callable[[], None] | None = None,
    before_retry: Callable[[], None] | None = None,
) -> Callable[..., T]:
    """``call`` retried with backoff (0.5 s doubling to 15 s) while the database is unreachable;
    ``before_retry`` runs before each new attempt, ``on_recovered`` when a call succeeds after
    failing."""

    @functools.wraps(call)
    def retried(*args: Any, **kwargs: Any) -> T:
        deadline = time.monotonic() + _retry_budget()
        wait, attempt = 0.5, 1
        while True:
            try:
                result = call(*args, **kwargs)
            except Exception as exc:
                if not _unreachable(exc) or time.monotonic() + wait > deadline:
                    raise
                log.warning(
                    "rnnlab: storage %s unreachable during %s (%s); retrying in %.1f s "
                    "(attempt %d)",
                    redact(url),
                    what,
                    str(exc).splitlines()[0][:200],
                    wait,
                    attempt,
                )
                time.sleep(wait)
                wait, attempt = min(2 * wait, 15.0), attempt + 1
                if before_retry is not None:
                    before_retry()
                continue
            if attempt > 1:
                log.warning("rnnlab: storage %s reachable again", redact(url))
                if on_recovered is not None:
                    on_recovered()
            return result

    return retried


class RetryingRDBStorage(RDBStorage):
    """Optuna's RDBStorage whose every call survives a database that is briefly away.

    ``recovered_at`` (``time.monotonic()``) is when a call last succeeded after an outage: no
    coordinator could beat during the outage, so heartbeats are not judged until every one has
    had a grace period to beat again (:meth:`judges_heartbeats`)."""

    recovered_at = -math.inf

    def __init__(
        self,
        url: str,
        heartbeat: int | None = None,
        on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    ) -> None:
        engine_kwargs: dict[str, Any] = {}
        if not url.startswith("sqlite"):
            engine_kwargs["pool_pre_ping"] = True  # drop connections a server restart broke
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            with_retries(self._found, "connecting", url)(url, engine_kwargs, heartbeat, on_stale)

    def _found(
        self,
        url: str,
        engine_kwargs: dict[str, Any],
        heartbeat: int | None,
        on_stale: Callable[[optuna.Study, FrozenTrial], None] | None,
    ) -> None:
        """Optuna's constructor (it creates the schema when it is missing) under
        :func:`founders_lock`, read again when another founder created an object first."""
        for attempt in range(5):
            try:
                with founders_lock(url):
                    super().__init__(
                        url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=heartbeat,
                        grace_period=3 * heartbeat if heartbeat else None,
                        heartbeat_stale_trial_callback=on_stale,
                    )
                return
            except Exception as exc:
                if not _another_founder(exc) or attempt == 4:
                    raise
                log.info("rnnlab: another process created the schema first; reading it again")
                with contextlib.suppress(Exception):
                    self.engine.dispose()
                time.sleep(0.2 * (attempt + 1))

    def recovered(self) -> None:
        self.recovered_at = time.monotonic()

    def fresh_session(self) -> None:
        """Drop this thread's session: one whose connection died mid-transaction refuses every
        later query ("Can't reconnect until invalid transaction is rolled back")."""
        with contextlib.suppress(Exception):
            self.scoped_session.remove()

    def judges_heartbeats(self) -> bool:
        """False during a grace period after an outage (see the class docstring)."""
        return time.monotonic() - self.recovered_at > (self.grace_period or 0)


def _wrap_methods(cls: type[RetryingRDBStorage]) -> None:
    names = [
        n
        for n in dir(RDBStorage)
        if (not n.startswith("_") or n in CACHED_STORAGE_CALLS)
        and callable(getattr(RDBStorage, n))
        and n != "__init__"
    ]
    for name in names:
        original = getattr(RDBStorage, name)

        def method(self: RetryingRDBStorage, *args: Any, _name: str = name, **kwargs: Any) -> Any:
            bound = getattr(super(cls, self), _name)
            retried = with_retries(bound, _name, self.url, self.recovered, self.fresh_session)
            return retried(*args, **kwargs)

        functools.update_wrapper(method, original)
        setattr(cls, name, method)


_wrap_methods(RetryingRDBStorage)


def unreachable_error(url: str, exc: BaseException) -> StorageError | None:
    """The message for a database that stayed unreachable through every retry (None when
    ``exc`` is another error): the storage, the error and what to check."""
    import sqlalchemy.exc as sa

    cause = _unreachable(exc)
    if cause is None:
        return None
    if isinstance(cause, sa.DBAPIError) and cause.orig is not None:
        cause = cause.orig  # the driver's words, without SQLAlchemy's SQL and link
    first = (str(cause).splitlines() or [type(cause).__name__])[0][:300]
    return StorageError(
        f"the Optuna storage {redact(url)} could not be reached (retried for "
        f"{_retry_budget():g} s, RNNLAB_STORAGE_RETRY_S): {first}. Check that the database "
        "server is running and reachable from this machine and that the URL (user, password, "
        "database or file path) is right, then run the same command again."
    )


def storage_for(
    url: str,
    heartbeat: int | None = None,
    on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> optuna.storages.BaseStorage:
    """``*.journal`` paths use Optuna's journal file (no server, no heartbeats: one machine);
    anything else is a database URL (``sqlite:///...``, ``postgresql://...``) with heartbeats
    every ``heartbeat`` seconds (default :data:`DEFAULT_HEARTBEAT`), retries, and ``on_stale``
    called for each trial this process fails for a missing heartbeat. A database still
    unreachable after the retries is a :class:`~rnnlab.errors.StorageError`."""
    if "://" not in url:
        from rnnlab.sweep._journal import open_journal

        return open_journal(url)  # a torn last record recovered first
    try:
        return RetryingRDBStorage(url, heartbeat or DEFAULT_HEARTBEAT, on_stale)
    except Exception as exc:
        error = unreachable_error(url, exc)
        if error is None:
            raise
        raise error from exc


class Heartbeat:
    """A thread that records a heartbeat for every trial in ``ids`` each ``interval`` seconds
    (Optuna's own heartbeat thread serves one trial of ``study.optimize``; a coordinator runs
    several trials at once). A failed heartbeat is logged, never raised: the next one may work."""

    def __init__(self, storage: optuna.storages.BaseStorage, interval: int) -> None:
        self.storage = storage
        self.interval = interval
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rnnlab-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def add(self, trial_id: int) -> None:
        """Beat for ``trial_id`` from now on (and once at once)."""
        with self._lock:
            self._ids.add(trial_id)
        self._beat(trial_id)

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self._ids.discard(trial_id)

    def _beat(self, trial_id: int) -> None:
        try:
            self.storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
        except Exception as exc:  # the retrying storage already waited; try again next time
            log.warning("rnnlab: heartbeat for trial id %d failed: %s", trial_id, exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                ids = sorted(self._ids)
            for trial_id in ids:
                self._beat(trial_id)
