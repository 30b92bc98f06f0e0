"""Where runs are recorded: the Tracker protocol, MLflow's implementation and a null one.

MLflow is used through ``MlflowClient`` so that runs never depend on a process-global active run
(sweeps log several runs from one process). Scalars and tags are buffered and written with one
synchronous ``log_batch`` per 1000 values and at the end; arrays go in artifacts (MEASURED.md: one
log_metric call costs ~12 ms on sqlite). Synchronous on purpose: an asynchronous ``log_batch``
starts MLflow's logging thread, and ending the run then waits ~1 s for it to wake up and stop
(benchmarks/tracking.py), more than the writes it hid.

A tracking server's faults end in rnnlab errors, not tracebacks (issue 18): one that stays away
through MLflow's own retries (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` / ``_TIMEOUT``) is a
:class:`~rnnlab.errors.TrackingError` naming the server and the run, whatever the call
(``create_run``, ``log_batch``, ``set_terminated``, ...); an artifact upload the server refuses
(an HTTP 500: its ``--artifacts-destination`` full or not writable) is an
:class:`~rnnlab.errors.ArtifactError`, as a local location that cannot be written is.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rnnlab._names import (
    CUSTOM_MODEL_DEVELOPMENT,
    DEFAULT_UI,
    EXPERIMENT_KIND,
    MLFLOW_PARENT,
    ui_links,
)
from rnnlab.errors import ArtifactError, TrackingError

if TYPE_CHECKING:
    from mlflow import MlflowClient

MAX_BATCH = 1000  # MLflow's limit on metrics per log_batch call
MAX_PARAMS = 100  # and on params per call
_EXPERIMENTS: dict[tuple[str, str], str] = {}  # (tracking URI, experiment name) -> its id


class Tracker(Protocol):
    """Records one run. Not thread-safe: one tracker per run, used from the training thread."""

    run_id: str | None
    keeps_artifacts: bool
    """False: the run's artifact files are not even written (nothing would keep them)."""

    def start(
        self, experiment: str, run_name: str, tags: dict[str, str], params: dict[str, str]
    ) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def log_artifacts(self, folder: Path) -> None: ...

    def finish(self, status: str) -> None:
        """End the run: ``FINISHED``, ``FAILED`` or ``KILLED``; flushes everything first."""
        ...

    def describe(self) -> str:
        """How a person opens this run (for the CLI's final message)."""
        ...


class NullTracker:
    """Keeps metrics in memory (``history``) and writes nothing: ``--no-track`` and tests.

    Args:
        keep_artifacts: write the artifact files anyway and record their names (tests).
    """

    def __init__(self, keep_artifacts: bool = True) -> None:
        self.keeps_artifacts = keep_artifacts
        self.run_id: str | None = None
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.tags: dict[str, str] = {}
        self.params: dict[str, str] = {}
        self.status: str | None = None
        self.artifacts: list[str] = []

    def start(
        self, experiment: str, run_name: str, tags: dict[str, str], params: dict[str, str]
    ) -> None:
        self.tags.update(tags)
        self.params.update(params)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.history.setdefault(key, []).append((step, float(value)))

    def set_tags(self, tags: dict[str, str]) -> None:
        self.tags.update(tags)

    def log_artifacts(self, folder: Path) -> None:
        self.artifacts.extend(sorted(p.name for p in folder.iterdir()))

    def finish(self, status: str) -> None:
        self.status = status

    def describe(self) -> str:
        return "not tracked (--no-track)"


class MlflowTracker:
    """Logs to MLflow: the default store (``./mlflow.db``) unless MLFLOW_TRACKING_URI is set.

    Args:
        tracking_uri: overrides the environment / MLflow default.
        parent_run_id: nest the run under this one (sweeps).
        flush_every: buffered metric values before a ``log_batch``.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        parent_run_id: str | None = None,
        flush_every: int = MAX_BATCH,
    ) -> None:
        import mlflow

        os.environ.setdefault(
            "MLFLOW_ALLOW_FILE_STORE", "true"
        )  # an existing ./mlruns keeps working
        self.tracking_uri: str = tracking_uri or mlflow.get_tracking_uri()
        self._client: MlflowClient | None = None  # created by start(): no store before a run
        self.parent_run_id = parent_run_id
        self.flush_every = min(flush_every, MAX_BATCH)
        self.run_id: str | None = None
        self.keeps_artifacts = True
        self.experiment_id: str | None = None
        self._buffer: list[Any] = []
        self._tags: dict[str, str] = {}  # written with the next batch of metrics, or at finish

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def open_store(self) -> None:
        """Open the store now (MLflow's import, its database or a first request to the server),
        a server that stays away through MLflow's retries raising a TrackingError."""
        with self._reaching("opening the store"):
            self.client.search_experiments(max_results=1)

    def _experiment(self, name: str) -> str:
        key = (self.tracking_uri, name)
        if key not in _EXPERIMENTS:  # one lookup per process, not one per run
            with self._reaching(f"opening experiment {name!r}"):
                _EXPERIMENTS[key] = self._find_or_create(name)
        return _EXPERIMENTS[key]

    def _find_or_create(self, name: str) -> str:
        """The experiment's id, created if need be; either way it is marked as a training
        experiment (:data:`rnnlab._names.EXPERIMENT_KIND`), so MLflow's UI opens on its runs."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.tags.get(EXPERIMENT_KIND) != CUSTOM_MODEL_DEVELOPMENT:  # made before it
                self.client.set_experiment_tag(
                    found.experiment_id, EXPERIMENT_KIND, CUSTOM_MODEL_DEVELOPMENT
                )
            return str(found.experiment_id)
        try:
            tags = {EXPERIMENT_KIND: CUSTOM_MODEL_DEVELOPMENT}
            return str(self.client.create_experiment(name, tags=tags))
        except Exception:  # another process created it in between
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def start(
        self, experiment: str, run_name: str, tags: dict[str, str], params: dict[str, str]
    ) -> None:
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        all_tags = dict(tags)
        if self.parent_run_id:
            all_tags[MLFLOW_PARENT] = self.parent_run_id
        self.experiment_id = self._experiment(experiment)
        try:
            with self._reaching(f"creating run {run_name!r}"):
                run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=run_name)
        except MlflowException:  # forget a remembered experiment that was deleted meanwhile
            _EXPERIMENTS.pop((self.tracking_uri, experiment), None)
            raise
        self.run_id = run.info.run_id
        items = [Param(k, v[:6000]) for k, v in params.items()]
        with self._reaching("logging its parameters"):
            for i in range(0, len(items), MAX_PARAMS):
                chunk = items[i : i + MAX_PARAMS]
                self.client.log_batch(self.run_id, params=chunk, synchronous=True)

    def attach(self, run_id: str, reopen: bool = False) -> bool:
        """Continue an existing run (a resumed sweep's parent); False if it does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            with self._reaching(f"opening run {run_id}"):
                run = self.client.get_run(run_id)
        except MlflowException:
            return False
        self.run_id, self.experiment_id = run_id, run.info.experiment_id
        if reopen:
            with self._reaching("reopening it"):
                self.client.update_run(run_id, status="RUNNING")
        return True

    def log_metrics(
        self, metrics: dict[str, float], step: int, timestamp_ms: int | None = None
    ) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        self._buffer.extend(Metric(k, float(v), now, step) for k, v in metrics.items())
        if len(self._buffer) >= self.flush_every:
            self._flush()

    def flush(self) -> None:
        """Write the buffered metrics and tags now (rnnlab.run._background, between messages)."""
        if self._buffer or self._tags:
            self._flush()

    def _flush(self) -> None:
        from mlflow.entities import RunTag

        assert self.run_id is not None
        tags = [RunTag(k, v) for k, v in self._tags.items()]
        self._tags.clear()
        with self._reaching("logging metrics and tags"):
            while self._buffer or tags:
                chunk, self._buffer = self._buffer[:MAX_BATCH], self._buffer[MAX_BATCH:]
                self.client.log_batch(self.run_id, metrics=chunk, tags=tags, synchronous=True)
                tags = []

    def set_tags(self, tags: dict[str, str]) -> None:
        """Tags are written with the next batch of metrics, or at :meth:`finish` at the latest."""
        assert self.run_id is not None
        self._tags.update(tags)

    def log_artifacts(self, folder: Path) -> None:
        """Upload ``folder``; an artifact location that cannot be written (a full disk, no
        permission, a path through a file; a tracking server that refuses the upload) is an
        ArtifactError naming it, a server that cannot be reached a TrackingError (issue 18).

        A server that refuses an upload may answer 500 before reading the body and drop the
        connection (uvicorn does): that reads as a connection error, so one is an
        ArtifactError while the server still answers a fresh request (:func:`answers`)."""
        from mlflow.exceptions import MlflowException

        assert self.run_id is not None
        try:
            self.client.log_artifacts(self.run_id, str(folder))
        except OSError as exc:  # requests' HTTPError is one too: the server answered 5xx
            where = exc.filename or self._artifact_uri()
            raise self._artifact_error(where, exc.strerror or str(exc)) from exc
        except MlflowException as exc:  # MLflow's retries ended (error answers, or none)
            cause = unreachable(exc)
            if cause is not None and not answers(self.tracking_uri):
                raise self._tracking_error("uploading its artifacts", exc, cause) from exc
            raise self._artifact_error(self._artifact_uri(), _first_line(exc)) from exc

    def _artifact_uri(self) -> str:
        """The run's artifact location, for the message; the server's when even that fails."""
        try:
            return str(self.client.get_run(str(self.run_id)).info.artifact_uri)
        except Exception:
            return f"the artifact store of {self.tracking_uri}"

    def _artifact_error(self, where: str, why: str) -> ArtifactError:
        return ArtifactError(
            f"could not write the artifacts of MLflow run {self.run_id} to {where}: "
            f"{why}. Free space there or make it writable (the "
            "experiment's artifact location, or --default-artifact-root / "
            "--artifacts-destination of the tracking server, whose log says why), then run "
            "the same command again."
        )

    @contextlib.contextmanager
    def _reaching(self, what: str) -> Iterator[None]:
        """Turn a tracking server that stays away through MLflow's retries into a
        TrackingError naming it, the run and what was being done."""
        try:
            yield
        except TrackingError:
            raise
        except Exception as exc:
            cause = unreachable(exc)
            if cause is None:
                raise
            raise self._tracking_error(what, exc, cause) from exc

    def _tracking_error(self, what: str, exc: BaseException, cause: BaseException) -> TrackingError:
        from mlflow.environment_variables import (
            MLFLOW_HTTP_REQUEST_MAX_RETRIES,
            MLFLOW_HTTP_REQUEST_TIMEOUT,
        )

        run = f" for MLflow run {self.run_id}" if self.run_id else ""
        retries = MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()
        timeout = MLFLOW_HTTP_REQUEST_TIMEOUT.get()
        return TrackingError(
            f"the MLflow tracking server {self.tracking_uri} could not be reached while "
            f"{what}{run} (after MLflow's {retries} retries, MLFLOW_HTTP_REQUEST_MAX_RETRIES; "
            f"{timeout} s each, MLFLOW_HTTP_REQUEST_TIMEOUT): {_first_line(cause)}. Check "
            "that the server is running and reachable from this machine (`mlflow server` "
            "on that host and port, a firewall, a proxy) and that MLFLOW_TRACKING_URI is "
            "right, then run the same command again."
        )

    def finish(self, status: str) -> None:
        if self.run_id is None:
            return
        self._flush()
        with self._reaching(f"ending it {status}"):
            self.client.set_terminated(self.run_id, status=status)

    def describe(self) -> str:
        """The run's page and its experiment's runs page in MLflow's UI (the server's, or the
        one ``mlflow ui`` serves on the store)."""
        uri = self.tracking_uri
        served = uri.startswith(("http://", "https://"))
        runs, run = ui_links(uri if served else DEFAULT_UI, str(self.experiment_id), self.run_id)
        links = f"the run {run}\n  the runs: {runs}"
        if served:
            return links
        return f"{links}\n  (served by `rnnlab ui` or `mlflow ui --backend-store-uri {uri}`)"


def unreachable(exc: BaseException) -> BaseException | None:
    """The connection error or timeout behind ``exc`` (MLflow wraps requests' exceptions in an
    MlflowException, as the ``__cause__`` or only the ``__context__``), or None when the server
    answered (an error answer is not an unreachable server)."""
    import requests

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.ConnectionError | requests.Timeout):
            if "too many" in str(current) and "error responses" in str(current):
                return None  # urllib3's retries spent on 5xx answers: the server is there
            return current
        current = current.__cause__ or current.__context__
    return None


def answers(uri: str) -> bool:
    """Whether the tracking server at ``uri`` answers a fresh request (its ``/health``) now."""
    import requests

    if not uri.startswith(("http://", "https://")):
        return True  # a local store: nothing to reach
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=10)
    except requests.RequestException:
        return False
    return True


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]


def running_runs(tracking_uri: str | None, experiment: str, tags: dict[str, str]) -> list[str]:
    """The ids of the RUNNING runs of ``experiment`` that carry all of ``tags``.

    A coordinator killed between creating a trial's run and recording its id on the trial
    leaves a run nobody knows by id; its tags still name it."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = client.search_runs(
        [found.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=5000
    )
    return [r.info.run_id for r in runs if all(r.data.tags.get(k) == v for k, v in tags.items())]
