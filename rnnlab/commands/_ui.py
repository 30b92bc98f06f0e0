"""``rnnlab ui``: the MLflow UI (and optuna-dashboard, when installed) on a sweep's stores.

Each server runs in its own session (process group): Ctrl-C reaches only rnnlab, which then stops
every group (SIGTERM, up to 10 s, then SIGKILL) so that no server or child of one is left behind.
Nothing heavy is imported here (no torch, mlflow or optuna): the servers are subprocesses.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, Any

import click

from rnnlab.commands._common import echo_links

READY_TIMEOUT_S = 60.0
"""How long a server may take to answer HTTP (MEASURED.md: MLflow's takes 10-18 s here)."""
STOP_TIMEOUT_S = 10.0
"""How long a server's group has after SIGTERM before it gets SIGKILL."""

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _Stop(Exception):
    """SIGTERM or SIGHUP arrived: stop as for Ctrl-C."""


@dataclass
class _Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def tail(self, lines: int = 25) -> str:
        self.log.flush()
        size = self.log.seek(0, os.SEEK_END)
        self.log.seek(max(0, size - 8000))
        text = self.log.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _probe_host(host: str) -> str:
    """Where to knock (and what to open): a wildcard address answers on loopback too."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _port_free(host: str, port: int) -> bool:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            sock.bind(address)
    except OSError:
        return False
    return True


def _answers(url: str) -> bool:
    try:
        _NO_PROXY.open(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True  # any HTTP answer, even an error page, means it is up
    except OSError:
        return False
    return True


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


def _start(name: str, command: list[str], url: str, env: dict[str, str]) -> _Server:
    log = tempfile.TemporaryFile()  # noqa: SIM115 (kept open while the server runs)
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group: Ctrl-C is ours to pass on
    )
    return _Server(name, url, proc, log)


def _wait_ready(servers: list[_Server], probes: dict[str, str]) -> str | None:
    """None once every server answers HTTP; else what went wrong, with the server's output."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = list(servers)
    while pending:
        for server in list(pending):
            code = server.proc.poll()
            if code is not None:
                return (
                    f"the {server.name} exited (code {code}) before it answered:\n{server.tail()}"
                )
            if _answers(probes[server.name]):
                pending.remove(server)
        if pending and time.monotonic() > deadline:
            server = pending[0]
            return (
                f"the {server.name} did not answer at {server.url} within "
                f"{READY_TIMEOUT_S:.0f} s; its output:\n{server.tail()}"
            )
        if pending:
            time.sleep(0.25)
    return None


def group_alive(pgid: int) -> bool:
    """Whether any process of the group lives (zombies left for a lazy init do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


def _signal_group(server: _Server, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.proc.pid, signum)  # start_new_session: the group id is the leader's pid


def _stop_all(servers: list[_Server]) -> None:
    for server in servers:
        _signal_group(server, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while True:
        for server in servers:
            server.proc.poll()  # reap the leader so that it stops counting
        alive = [s for s in servers if group_alive(s.proc.pid)]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for server in alive:
        click.echo(f"The {server.name} ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s: killing it.")
        _signal_group(server, signal.SIGKILL)
    for server in servers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout=5)
        server.log.close()


def _on_signals(handler: Callable[[int, Any], None] | int) -> dict[int, Any]:
    """Set ``handler`` for SIGINT/SIGTERM/SIGHUP; the previous ones (none off the main thread)."""
    previous: dict[int, Any] = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, handler)
        if handler == signal.SIG_IGN:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: signals are not ours to handle
        pass
    return previous


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signal.Signals(signum).name)


def _restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


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
        if not _port_free(host, number):
            click.echo(
                f"Error: port {number} on {host} is in use (the {name} needs it); "
                "choose another with --port.",
                err=True,
            )
            return 2

    servers: list[_Server] = []
    record: Path | None = None
    reach = _probe_host(host)  # a wildcard address is opened (and probed) on loopback
    probes = {name: _url(reach, number) + path for name, _, number, path in wanted}
    previous = _on_signals(_raise_stop)
    try:
        for name, command, number, _ in wanted:
            servers.append(_start(name, command, _url(reach, number), env))
        problem = _wait_ready(servers, probes)
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
    except (KeyboardInterrupt, _Stop):
        click.echo("Stopping ...")
        return 0
    finally:
        _restore(previous)
        if record is not None:
            record.unlink(missing_ok=True)
        ignored = _on_signals(signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        try:
            _stop_all(servers)
        finally:
            _restore(ignored)


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
    with _NO_PROXY.open(request, timeout=10) as answer:
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
