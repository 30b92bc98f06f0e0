"""6. Tracking: what recording a run in MLflow costs, on sqlite and on a tracking server.

A sweep's trial, as its slot pays for it. The trial is the flagship sweep's base
(experiments/vanishing.yaml: tanh RNN, hidden 32, adding T=60, 1000 Adam steps, probe and
evaluate every 100, log every 10), trained by ``train()`` in this process (the slot) with the
tracker a sweep's worker has, ``PipeTracker``, whose messages a spawned process writes to MLflow
the way the coordinator does (benchmarks/_coordinator_side.py: ``MlflowTracker``, and the PNGs
drawn by a Drawer process, rnnlab.sweep._figurework); against ``NullTracker`` (no artifact
files), on MLflow's default kind of store (a sqlite file) and on a real ``mlflow server``. Two
figures per store:

* tracking calls: the seconds spent inside the tracker's methods on the slot (a timing proxy
  around the real ``PipeTracker``) plus writing the artifact files
  (``rnnlab.run._artifacts.write``: npz, model.pt, summary; the PNGs are the Drawer's);
* the whole cost: the tracked trial's wall time over the untracked one's (the coordinator's
  writes and the Drawer run in other processes and compete for the cores, which only this
  shows).

And a single run, ``rnnlab run`` tracked against ``--no-track`` as whole processes
(benchmarks/run_tracking.py).

The server runs on 127.0.0.1 with ``--workers 1`` and ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``
in its own process group, which is stopped, whole, afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import _runs, run_tracking
from benchmarks._timing import CpuShare, Row, child_env, interleave, median, result

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

NAME = "tracking"
TITLE = "Tracking: MLflow's share of a sweep trial and of `rnnlab run` (sqlite, server)"
TARGET_PERCENT = 2.0


class TimedTracker:
    """A :class:`rnnlab.run.Tracker` that forwards to ``inner`` and times every call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.by_method: dict[str, float] = {}
        self.first_start_s: float | None = None

    @property
    def run_id(self) -> str | None:
        return self.inner.run_id

    @property
    def keeps_artifacts(self) -> bool:
        return bool(self.inner.keeps_artifacts)

    @property
    def draws_figures(self) -> bool:
        return bool(getattr(self.inner, "draws_figures", False))

    def _timed(self, call: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return call(*args)
        finally:
            took = time.perf_counter() - start
            self.seconds += took
            name = call.__name__
            self.by_method[name] = self.by_method.get(name, 0.0) + took

    def start(
        self, experiment: str, run_name: str, tags: dict[str, str], params: dict[str, str]
    ) -> None:
        before = self.seconds
        self._timed(self.inner.start, experiment, run_name, tags, params)
        self.first_start_s = self.seconds - before

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._timed(self.inner.log_metrics, metrics, step)

    def set_tags(self, tags: dict[str, str]) -> None:
        self._timed(self.inner.set_tags, tags)

    def log_artifacts(self, folder: Path) -> None:
        self._timed(self.inner.log_artifacts, folder)

    def finish(self, status: str) -> None:
        self._timed(self.inner.finish, status)

    def describe(self) -> str:
        return str(self._timed(self.inner.describe))


@contextlib.contextmanager
def timed_artifact_files(box: list[float]) -> Iterator[None]:
    """Time ``rnnlab.run._artifacts.write`` (called by ``train()``), adding its seconds to
    ``box``."""
    from rnnlab.run import _artifacts as artifacts

    original = artifacts.write

    def write(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            box.append(time.perf_counter() - start)

    artifacts.write = write
    try:
        yield
    finally:
        artifacts.write = original


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[tuple[str, float]]:
    """A real ``mlflow server`` on 127.0.0.1; yields its URI and how long it took to answer."""
    from benchmarks.startup import script

    port = free_port()
    log = (folder / "server.log").open("w")
    began = time.perf_counter()
    server = subprocess.Popen(
        [
            script("mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
        ],
        cwd=folder,
        env=child_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped whole
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(folder / 'server.log').read_text()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{uri}/health", timeout=2) as answer,
            ):
                if answer.status == 200:
                    break
            if time.perf_counter() - began > 180:
                raise RuntimeError("mlflow server did not answer within 180 s")
            time.sleep(0.25)
        yield uri, time.perf_counter() - began
    finally:
        stop_group(server)
        log.close()


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group of ``process``, SIGKILL what is left after 15 s."""
    group = os.getpgid(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)  # the job runners and workers, if any survived
    process.wait(timeout=15)


def import_seconds() -> float:
    """``import mlflow`` in a fresh process, less a bare interpreter start."""

    def clock(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=child_env(), check=True, timeout=120)
        return time.perf_counter() - start

    times = interleave({"mlflow": lambda: clock("import mlflow"), "bare": lambda: clock("pass")}, 3)
    return median(times["mlflow"]) - median(times["bare"])


@contextlib.contextmanager
def coordinator_side(uri: str) -> Iterator[Connection]:
    """A spawned process writing a PipeTracker's messages to ``uri`` as the coordinator does;
    yields the worker's end of the pipe. Stopped (its figures drained) on exit."""
    import multiprocessing

    from benchmarks._coordinator_side import serve

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=serve, args=(theirs, uri), daemon=True)
    process.start()
    theirs.close()
    try:
        yield ours
    finally:
        ours.send(None)
        process.join(timeout=120)
        if process.is_alive():
            process.kill()
        ours.close()


def last_run(uri: str) -> str:
    """The id of the newest run in ``uri``'s store with the default plots (the coordinator
    side, not this process, knows the ids)."""
    from mlflow import MlflowClient

    from rnnlab._names import FLOW_PNG

    client = MlflowClient(tracking_uri=uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    for run in client.search_runs(ids, order_by=["attributes.start_time DESC"], max_results=20):
        if FLOW_PNG in {a.path for a in client.list_artifacts(run.info.run_id)}:
            return str(run.info.run_id)
    raise RuntimeError(f"no run with {FLOW_PNG} in {uri}")


def record_of(uri: str, run_id: str) -> dict[str, Any]:
    """How the trial was recorded: metric keys, metric points and artifact files."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    keys = list(client.get_run(run_id).data.metrics)
    points = sum(len(client.get_metric_history(run_id, key)) for key in keys)
    files = sorted(item.path for item in client.list_artifacts(run_id))
    return {"metric_keys": len(keys), "metric_points": points, "artifacts": files}


def breakdown(store: str, tracked: list[dict[str, Any]]) -> str:
    """Where a store's seconds went, per tracker method and the artifact files (medians)."""
    methods = sorted({m for r in tracked for m in r["by_method_s"]})
    parts = [
        f"`{m}()` {median([r['by_method_s'].get(m, 0.0) for r in tracked]):.3f} s" for m in methods
    ]
    files = median([r["artifact_files_s"] for r in tracked])
    wall = median([r["wall_s"] for r in tracked])
    return (
        f"{store}, per trial of {wall:.2f} s, on the slot: " + ", ".join(parts) + f"; writing the"
        f" artifact files (npz, model.pt, summary; not the PNGs) {files:.3f} s."
    )


def run(quick: bool = False) -> dict[str, Any]:
    """Untracked, sqlite and server trials, interleaved, after one warm-up trial per store;
    then the single run."""
    from rnnlab.run import NullTracker
    from rnnlab.sweep._child import PipeTracker

    share, started = CpuShare(), time.perf_counter()
    if quick:
        data = _runs.config(
            "rnn", 40, hidden=8, batch=16, steps=30, probe_every=10, eval_every=10, val_size=64
        )
        reps = 1
    else:
        data = _runs.config(
            "rnn",
            60,
            hidden=32,
            batch=64,
            steps=1000,
            probe_every=100,
            eval_every=100,
            val_size=500,
            lr=1e-2,
        )
        reps = 3
    run_ = _runs.resolve(data)
    quiet = _runs.resolve({**data, "train": {**data["train"], "plots": False}})
    seq_len = data["dataset"]["seq_len"]

    sides: dict[str, Connection] = {}  # tracking URI -> the pipe to its coordinator side

    def trial(uri: str | None, plots: bool = True) -> dict[str, Any]:
        from rnnlab.run import train

        files: list[float] = []
        tracker: Any = NullTracker(keep_artifacts=False)
        if uri is not None:
            tracker = TimedTracker(PipeTracker(sides[uri]))
        start = time.perf_counter()
        with timed_artifact_files(files):
            outcome = train(run_ if plots else quiet, tracker)
        wall = time.perf_counter() - start
        if outcome.outcome != "completed":
            raise RuntimeError(f"tracking trial ended {outcome.outcome}: {outcome.message}")
        calls = tracker.seconds if uri is not None else 0.0
        return {
            "wall_s": wall,
            "mlflow_calls_s": calls,
            "artifact_files_s": sum(files),
            "start_s": tracker.first_start_s if uri is not None else None,
            "by_method_s": tracker.by_method if uri is not None else {},
        }

    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        folder = Path(tmp)
        sqlite = f"sqlite:///{folder / 'mlflow.db'}"
        with (
            mlflow_server(folder) as (server, server_up_s),
            coordinator_side(sqlite) as sides[sqlite],
            coordinator_side(server) as sides[server],
        ):
            cold = {"sqlite": trial(sqlite), "server": trial(server)}  # new stores: migrations
            runs = interleave(
                {
                    "none": lambda: trial(None),
                    "sqlite": lambda: trial(sqlite),
                    "server": lambda: trial(server),
                    "sqlite, train.plots false": lambda: trial(sqlite, plots=False),
                },
                reps,
            )
        recorded = record_of(sqlite, last_run(sqlite))  # the sides drained: every run ended
        (folder / "single").mkdir()
        single = run_tracking.measure(folder / "single", quick)
    mlflow_import_s = import_seconds()
    rows: list[Row] = []
    for store in ("sqlite", "server", "sqlite, train.plots false"):
        tracked, bare = runs[store], runs["none"]
        calls = [100 * (r["mlflow_calls_s"] + r["artifact_files_s"]) / r["wall_s"] for r in tracked]
        rows.append(
            Row(
                case=f"sweep, {store}: the slot's tracker calls + artifact files, share",
                value=median(calls),
                unit="%",
                target=f"<= {TARGET_PERCENT:g}%",
                ok=median(calls) <= TARGET_PERCENT,
                extra={
                    "mlflow_calls_s": [r["mlflow_calls_s"] for r in tracked],
                    "artifact_files_s": [r["artifact_files_s"] for r in tracked],
                    "wall_s": [r["wall_s"] for r in tracked],
                    "by_method_s": [r["by_method_s"] for r in tracked],
                },
            )
        )
        extra = [100 * (a["wall_s"] / b["wall_s"] - 1) for a, b in zip(tracked, bare, strict=True)]
        rows.append(
            Row(
                case=f"sweep, {store}: tracked trial's wall time over the untracked one",
                value=median([r["wall_s"] for r in tracked]),
                unit="s",
                baseline=median([r["wall_s"] for r in bare]),
                baseline_label="untracked (NullTracker)",
                ratio=1 + median(extra) / 100,
                target=f"<= {1 + TARGET_PERCENT / 100:g}x",
                ok=median(extra) <= TARGET_PERCENT,
            )
        )
    rows += run_tracking.rows(single)
    as_artifact = "gradient_flow.npz" in recorded["artifacts"]
    curve_keys_ok = as_artifact and recorded["metric_keys"] < seq_len
    rows.append(
        Row(
            case="metric points per trial (curves are the gradient_flow.npz artifact)",
            value=recorded["metric_points"],
            unit="points",
            target=f"curves in gradient_flow.npz; < {seq_len} (T) metric keys",
            ok=curve_keys_ok,
            extra=recorded,
        )
    )
    notes = [
        breakdown(store, runs[store]) for store in ("sqlite", "server", "sqlite, train.plots false")
    ]
    notes += [
        f"One-offs, not in the shares: `import mlflow` {mlflow_import_s:.2f} s; the first trial on "
        f"a new sqlite store took {cold['sqlite']['wall_s']:.2f} s on the slot (the coordinator "
        f"side creating the database meanwhile), on the new server "
        f"{cold['server']['wall_s']:.2f} s; the server answered "
        f"{server_up_s:.1f} s after launch; the single run's warm-up (creating its store) "
        f"{single['warm_up_s']['exit_s']:.1f} s.",
        f"Other processes used {100 * (share.others() or 0.0):.0f}% of the machine's CPU while "
        "this ran (other engineers' tests on the same 2 cores): the absolute seconds are "
        "inflated and noisy; the ratios are of turns taken back to back.",
    ]
    method = (
        f"The flagship's base trial (rnn, hidden {data['cell']['hidden_size']}, adding T={seq_len}"
        f", {data['train']['steps']} steps, probe/eval every {data['train']['probe_every']}, log "
        f"every {data['train']['log_every']}), 1 torch thread; untracked, sqlite and server trials"
        f" taking turns, {reps} each after a warm-up trial per store; medians. The slot's "
        f"tracker is the sweep worker's PipeTracker; a spawned process writes its messages as the"
        f" coordinator does (its PNGs drawn by a Drawer process). The default draws the PNGs; "
        f"`train.plots: false` keeps only the npz files." + run_tracking.method(single)
    )
    return result(
        NAME,
        TITLE,
        method,
        rows,
        quick=quick,
        share=share,
        started=started,
        notes=notes,
        details={
            "runs": runs,
            "cold": cold,
            "mlflow_import_s": mlflow_import_s,
            "single": single,
        },
    )
