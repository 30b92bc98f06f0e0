"""`rnnlab ui`: real servers on loopback, checked through MLflow's REST API, stopped by Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from rnnlab._names import ui_records_dir
from rnnlab.commands import _servers
from rnnlab.commands import _ui as ui
from rnnlab.report._uilinks import run_links_base

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy

FAKE_DASHBOARD = """
    import argparse, http.server, json, os, subprocess, sys

    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("storage")
        parser.add_argument("--host")
        parser.add_argument("--port", type=int)
        parser.add_argument("--storage-class")
        args = parser.parse_args()
        with open(os.environ["FAKE_DASHBOARD_ARGS"], "w") as out:
            json.dump(vars(args), out)
        # a child of its own, as real servers have: stopping must take it down too
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", args.storage])
        http.server.HTTPServer((args.host, args.port), http.server.SimpleHTTPRequestHandler
                               ).serve_forever()
"""


def _rnnlab(*args: str) -> list[str]:
    return [sys.executable, "-c", "from rnnlab.cli import main; main()", *args]


def _free_port_pair() -> int:
    """A port whose successor is free too (the dashboard takes port + 1)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            if port < 65535:
                with socket.socket() as b:
                    try:
                        b.bind(("127.0.0.1", port + 1))
                    except OSError:
                        continue
                    return port
    raise AssertionError("no two adjacent free ports")


def _get(url: str) -> bytes:
    with _HTTP.open(url, timeout=10) as response:
        body: bytes = response.read()
        return body


def _api(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, headers={"Content-Type": "application/json"}
    )
    with _HTTP.open(request, timeout=10) as response:
        return json.load(response)


def _refuses(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _processes_mentioning(text: str) -> dict[int, int]:
    """pid -> process group of every live (not zombie) process whose command line has ``text``."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state, _ppid, pgrp = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if text in cmdline and state != "Z" and int(proc.name) != os.getpid():
            found[int(proc.name)] = int(pgrp)
    return found


def _make_store(folder: Path, monkeypatch: pytest.MonkeyPatch, template: Path) -> tuple[str, str]:
    """A real sqlite store (a copy of the session's migrated ``template``) with one experiment
    and one run (a metric and an artifact)."""
    from mlflow import MlflowClient

    monkeypatch.chdir(folder)  # artifacts go where MLflow puts them by default, under here
    shutil.copy(template, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("ui-sweep")
    run_id = client.create_run(experiment).info.run_id
    client.log_metric(run_id, "val/loss", 0.25, step=3)
    note = folder / "note.txt"
    note.write_text("hello from the run\n")
    client.log_artifact(run_id, str(note))
    client.set_terminated(run_id)
    return uri, run_id


def _fake_dashboard(folder: Path) -> Path:
    """A distribution whose console script `optuna-dashboard` serves HTTP (for PYTHONPATH)."""
    site = folder / "site"
    info = site / "fake_optuna_dashboard-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-optuna-dashboard\n")
    (info / "entry_points.txt").write_text(
        "[console_scripts]\noptuna-dashboard = fake_dashboard:main\n"
    )
    (site / "fake_dashboard.py").write_text(textwrap.dedent(FAKE_DASHBOARD))
    return site


def test_ui_serves_the_store_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rnnlab_mlflow_template: Path
) -> None:
    uri, run_id = _make_store(tmp_path, monkeypatch, rnnlab_mlflow_template)
    journal = tmp_path / "rnnlab-optuna.journal"
    journal.touch()
    site = _fake_dashboard(tmp_path)
    port = _free_port_pair()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "ui.log"
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # this process reads the records there
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "FAKE_DASHBOARD_ARGS": str(tmp_path / "dashboard-args.json"),
        "TMPDIR": str(temp),  # where it records itself for the report's links (and only there)
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    command = _rnnlab("ui", "--tracking-uri", uri, "--port", str(port), "--storage", str(journal))
    servers: dict[int, int] = {}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "Ctrl-C stops" not in log.read_text():
            assert proc.poll() is None, f"rnnlab ui exited early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no URL within 90 s:\n{log.read_text()}"
            time.sleep(0.5)
        output = log.read_text()
        assert f"MLflow UI: {base}" in output
        assert f"Optuna dashboard: http://127.0.0.1:{port + 1}" in output

        # the experiment, the run's metric and its artifact, through MLflow's REST API
        found = _api(base, "/api/2.0/mlflow/experiments/search", {"max_results": 100})
        assert "ui-sweep" in [e["name"] for e in found["experiments"]]
        query = f"?run_id={run_id}&metric_key=val/loss"
        history = _api(base, "/api/2.0/mlflow/metrics/get-history" + query)["metrics"]
        assert [(m["value"], m["step"]) for m in history] == [(0.25, 3)]
        listed = _api(base, f"/api/2.0/mlflow/artifacts/list?run_id={run_id}")
        assert [f["path"] for f in listed["files"]] == ["note.txt"]
        assert _get(f"{base}/get-artifact?run_id={run_id}&path=note.txt") == b"hello from the run\n"
        assert _get(f"{base}/health").strip() == b"OK"

        # the report's rows link to this UI on its port (it recorded itself), for its store only
        assert run_links_base(uri, [None, run_id]) == base
        assert run_links_base(uri, ["0" * 32]) is None  # another store's run: no UI knows it

        # the dashboard: on port + 1, loopback, the journal as a journal file
        _get(f"http://127.0.0.1:{port + 1}/")
        args = json.loads((tmp_path / "dashboard-args.json").read_text())
        assert args == {
            "storage": str(journal),
            "host": "127.0.0.1",
            "port": port + 1,
            "storage_class": "JournalFileStorage",
        }

        # every server in its own group, none in rnnlab's
        servers = {
            pid: group
            for pid, group in _processes_mentioning(str(tmp_path)).items()
            if group != proc.pid
        }
        assert len(set(servers.values())) == 2, servers  # MLflow's and the dashboard's
        assert len(servers) >= 3, servers  # the dashboard's child too

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=30) == 0, log.read_text()
        output = log.read_text()
        assert "Stopping" in output and "Traceback" not in output
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)
        for group in set(servers.values()):
            assert not _servers.group_alive(group), f"group {group} still has processes"
        assert _processes_mentioning(str(tmp_path)) == {}
        assert _refuses(port) and _refuses(port + 1)
        assert list(ui_records_dir().glob("*.json")) == []  # its record went with it
        assert run_links_base(uri, [run_id]) is None
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        leftovers = set(servers.values()) | set(_processes_mentioning(str(tmp_path)).values())
        for group in leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)


def test_ui_of_an_unknown_sweep_is_an_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        _rnnlab("ui", "some-sweep"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Error: no sweep 'some-sweep'" in done.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_serve_refuses_a_busy_port_and_a_missing_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mlflow.db").touch()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = int(busy.getsockname()[1])
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        assert ui.serve(uri, None, port=port, host="127.0.0.1") == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err

    missing = f"sqlite:///{tmp_path / 'nothing' / 'mlflow.db'}"
    assert ui.serve(missing, None, port=port, host="127.0.0.1") == 2
    assert "no MLflow store at" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def test_loopback_hosts() -> None:
    assert all(map(_servers.is_loopback, ["127.0.0.1", "localhost", "::1"]))
    assert not any(map(_servers.is_loopback, ["0.0.0.0", "192.168.1.5"]))
