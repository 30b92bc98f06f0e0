"""``rnnlab ui``: the MLflow UI (and optuna-dashboard, when installed) on a sweep's stores.

Each server runs in its own session (process group; rnnlab.commands._servers): Ctrl-C reaches
only rnnlab, which then stops every group (SIGTERM, up to 10 s, then SIGKILL) so that no server or
child of one is left behind. Nothing heavy is imported here (no torch, mlflow or optuna): the
servers are subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.parse
import urllib.request
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click

from rnnlab.commands._common import echo_links
from rnnlab.commands._servers import (
    NO_PROXY,
    Server,
    Stop,
    http_url,
    is_loopback,
    on_signals,
    port_free,
    probe_host,
    raise_stop,
    restore,
    start,
    stop_all,
    wait_ready,
)


def _sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI; None for other stores."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if not path or path == ":memory:" else Path(path).resolve()


def _dashboard_command(storage: str, host: str, port: int) -> list[str] | None:
    """optuna-dashboard's own console script, run by this interpreter; None if not installed."""
    if not entry_points(group="console_scripts", name="optuna-dashboard"):
        return None
    run = (
        "import sys; from importlib.metadata import entry_points; "
        "sys.exit(next(iter(entry_points(group='console_scripts', name='optuna-dashboard')))"
        ".load()())"
    )
    command = [sys.executable, "-c", run, storage, "--host", host, "--port", str(port)]
    if "://" not in storage:  # a file path: Optuna's journal file (sqlite needs sqlite:///)
        command += ["--storage-class", "JournalFileStorage"]
    return command


def serve(
    tracking_uri: str,
    optuna_storage: str | None,
    *,
    port: int,
    host: str,
    experiment: str | None = None,
    parent_run_id: str | None = None,
) -> int:
    """Serve the MLflow UI on ``tracking_uri`` (and optuna-dashboard on ``optuna_storage`` at
    ``port + 1``, when installed) until Ctrl-C or SIGTERM (0) or until a server dies (1)."""
    if tracking_uri.startswith(("http://", "https://")):
        click.echo(f"Error: {tracking_uri} is an MLflow server already: open it.", err=True)
        return 2
    if not is_loopback(host):
        click.echo(
            f"Warning: listening on {host}: whoever reaches this machine can read and change "
            "these runs and studies (the UIs have no login).",
            err=True,
        )
    database = _sqlite_file(tracking_uri)
    if database is not None and not database.is_file():  # MLflow would make an empty one
        click.echo(
            f"Error: no MLflow store at {database} (nothing recorded there yet?); "
            "give the store with --tracking-uri.",
            err=True,
        )
        return 2
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "PYTHONUNBUFFERED": "1"}
    mlflow = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri]
    mlflow += ["--host", host, "--port", str(port), "--workers", "1"]
    if database is not None:
        # runs logged straight to the store keep absolute artifact paths, which the UI serves as
        # they are; this places artifacts uploaded through the server (``mlflow-artifacts:``)
        # next to the store instead of in the working directory (MLflow's default)
        mlflow += ["--artifacts-destination", str(database.parent / "mlartifacts")]
    wanted = [("MLflow UI", mlflow, port, "/health")]
    if optuna_storage is not None:
        dashboard = _dashboard_command(optuna_storage, host, port + 1) if port < 65535 else None
        if dashboard is None:
            click.echo(
                "optuna-dashboard is not installed (pip install optuna-dashboard): "
                "only the MLflow UI starts."
            )
        else:
            wanted.append(("Optuna dashboard", dashboard, port + 1, "/"))
    for name, _, number, _ in wanted:
        if not port_free(host, number):
            click.echo(
                f"Error: port {number} on {host} is in use (the {name} needs it); "
                "choose another with --port.",
                err=True,
            )
            return 2

    servers: list[Server] = []
    record: Path | None = None
    reach = probe_host(host)  # a wildcard address is opened (and probed) on loopback
    probes = {name: http_url(reach, number) + path for name, _, number, path in wanted}
    previous = on_signals(raise_stop)
    try:
        for name, command, number, _ in wanted:
            servers.append(start(name, command, http_url(reach, number), env))
        problem = wait_ready(servers, probes)
        if problem is not None:
            click.echo(f"Error: {problem}", err=True)
            return 1
        record = _record(servers[0].url, tracking_uri)
        click.echo(f"MLflow UI: {servers[0].url}  (store: {tracking_uri})")
        if experiment is not None:
            _echo_sweep_links(servers[0].url, experiment, parent_run_id)
        for server in servers[1:]:
            click.echo(f"Optuna dashboard: {server.url}  (storage: {optuna_storage})")
        click.echo("Ctrl-C stops " + ("them." if len(servers) > 1 else "it."))
        while True:
            for server in servers:
                code = server.proc.poll()
                if code is not None:
                    click.echo(
                        f"Error: the {server.name} exited by itself (code {code}):\n"
                        f"{server.tail()}",
                        err=True,
                    )
                    return 1
            time.sleep(0.5)
    except (KeyboardInterrupt, Stop):
        click.echo("Stopping ...")
        return 0
    finally:
        restore(previous)
        if record is not None:
            record.unlink(missing_ok=True)
        ignored = on_signals(signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        try:
            stop_all(servers)
        finally:
            restore(ignored)


def _record(url: str, tracking_uri: str) -> Path | None:
    """Say where this UI serves (rnnlab._names.UI_RECORDS), so that ``rnnlab report`` links its
    rows to it on any port; None where the temp directory refuses (the links then show ids)."""
    from rnnlab._names import ui_records_dir

    folder = ui_records_dir()
    path = folder / f"{os.getpid()}.json"
    text = json.dumps({"url": url, "tracking_uri": tracking_uri, "pid": os.getpid()})
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(text + "\n")
        partial.replace(path)  # whole or absent: a reader never sees half of it
    except OSError:
        return None
    return path


def _api(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + "/api/2.0/mlflow/" + path, data, {"Content-Type": "application/json"}
    )
    with NO_PROXY.open(request, timeout=10) as answer:
        return json.loads(answer.read())


def _echo_sweep_links(url: str, experiment: str, parent_run_id: str | None) -> None:
    """The deep links to the sweep's runs and its parent run, the experiment's id asked of the
    UI that just started (its REST API: no MLflow import here); an experiment from before
    rnnlab marked its kind gets the mark, so that the UI opens on its runs."""
    from rnnlab._names import CUSTOM_MODEL_DEVELOPMENT, EXPERIMENT_KIND

    query = urllib.parse.urlencode({"experiment_name": experiment})
    try:
        found = _api(url, f"experiments/get-by-name?{query}")["experiment"]
        tags = {t["key"]: t.get("value") for t in found.get("tags", [])}
        if tags.get(EXPERIMENT_KIND) != CUSTOM_MODEL_DEVELOPMENT:
            _api(
                url,
                "experiments/set-experiment-tag",
                {"experiment_id": found["experiment_id"], "key": EXPERIMENT_KIND,
                 "value": CUSTOM_MODEL_DEVELOPMENT},
            )  # fmt: skip
    except (OSError, ValueError, KeyError) as exc:
        click.echo(f"  the sweep's experiment {experiment!r} is not in this store ({exc})")
        return
    echo_links(url, str(found["experiment_id"]), parent_run_id, ui=url)


def open_ui(
    sweep_name: str | None, *, port: int, host: str, storage: str | None, tracking_uri: str | None
) -> int:
    """``rnnlab ui``: find the stores a sweep used, then serve the UIs until Ctrl-C."""
    from rnnlab._names import PARENT, TRACKING_URI
    from rnnlab.sweep import default_storage, load_latest
    from rnnlab.sweep import sweep_name as name_of

    storage_url = storage or default_storage()
    experiment = name_of(sweep_name) if sweep_name is not None else None
    parent = None
    if experiment is not None:
        study = load_latest(storage_url, experiment)
        tracking_uri = tracking_uri or study.user_attrs.get(TRACKING_URI)
        parent = study.user_attrs.get(PARENT)
    if tracking_uri is None:
        import mlflow

        tracking_uri = mlflow.get_tracking_uri()
    known = storage is not None or sweep_name is not None or Path(storage_url).exists()
    if known and "://" not in storage_url:  # optuna-dashboard reads the journal as rnnlab does
        from rnnlab.sweep import check_journal

        check_journal(storage_url)
    return serve(
        str(tracking_uri),
        storage_url if known else None,
        port=port,
        host=host,
        experiment=experiment,
        parent_run_id=str(parent) if parent else None,
    )
