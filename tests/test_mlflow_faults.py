"""MLflow's own faults end in rnnlab messages, not tracebacks (issue 18 item 4): a tracking
server that refuses a sweep trial's artifact upload (a real ``mlflow server`` on loopback whose
``--artifacts-destination`` cannot be written) and a tracking server that cannot be reached
(a closed loopback port, MLflow's retries cut down), through the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from servers import free_port, mlflow_server

from rnnlab._names import KEY, MESSAGE, OUTCOME, RUN_ID, TAG_REASON
from rnnlab.sweep import storage_for

SWEEP = """\
name: {name}
dataset: {{name: adding, seq_len: 6, val_size: 16, test_size: 16}}
cell: {{name: rnn, hidden_size: 4}}
train: {{steps: 4, batch_size: 4, eval_every: 2, probe_every: 2, log_every: 1, device: cpu,
        plots: false, dynamics_every: 0}}
sweep:
  workers: 1
  seeds: [0]
  space:
    cell: [{{name: rnn}}, {{name: gru}}]
"""
RUN = """\
dataset: {name: adding, seq_len: 6, val_size: 16, test_size: 16}
cell: {name: rnn, hidden_size: 4}
train: {steps: 4, batch_size: 4, eval_every: 2, probe_every: 2, log_every: 1, device: cpu,
        plots: false, dynamics_every: 0}
"""
PARENT_FILES = "sweep*.yaml"  # the parent run's sweep.yaml and sweep-resolved.yaml
FAST_FAIL = {  # MLflow's retries cut down: a closed port is given up on at once
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
}


def rnnlab(
    folder: Path, uri: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """The real CLI in ``folder`` against tracking server ``uri``, MLflow's retries cut down."""
    env = {
        **os.environ,
        **FAST_FAIL,
        **(env or {}),
        "MLFLOW_TRACKING_URI": uri,
        "CUDA_VISIBLE_DEVICES": "",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "rnnlab", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def output_of(process: subprocess.Popen[str]) -> str:
    return process.communicate(timeout=240)[0]


def optuna_trials(folder: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = storage_for(str(folder / "rnnlab-optuna.journal"))
    return optuna.load_study(study_name=name, storage=storage).get_trials()


@pytest.mark.slow  # a real `mlflow server` and a sweep: 80 s on the loaded 2-core machine
def test_an_artifact_upload_the_server_refuses_fails_the_trial_and_stops_the_sweep(
    tmp_path: Path, rnnlab_mlflow_template: Path
) -> None:
    """Once the sweep's parent run has its files, the server's artifact folder of the
    experiment becomes a file: every trial's upload is an HTTP 500 from the server (MLflow's
    one retry spent). The sweep stops with an ArtifactError naming the run and the location:
    exit 1, no traceback, nothing RUNNING in Optuna or MLflow, the attempt failed without an
    outcome so it runs again."""
    backend = tmp_path / "server.db"
    shutil.copy(rnnlab_mlflow_template, backend)
    artifacts = tmp_path / "artifacts"
    (tmp_path / "sw.yaml").write_text(SWEEP.format(name="refused"))
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0"}
    with mlflow_server(f"sqlite:///{backend}", artifacts) as url:
        sweep = rnnlab(tmp_path, url, "sweep", "sw.yaml", env=env)
        deadline = time.monotonic() + 120
        while len(parent := list(artifacts.glob(f"*/*/artifacts/{PARENT_FILES}"))) < 2:
            assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
            time.sleep(0.05)
        (folder,) = {p.parents[2] for p in parent}
        folder.rename(tmp_path / "moved")
        folder.write_text("not a folder: the trials' uploads fail on the server")
        output, _ = sweep.communicate(timeout=240)
        assert sweep.returncode == 1, output
        assert "Traceback" not in output, output
        assert "could not write the artifacts of MLflow run" in output, output
        assert "--artifacts-destination" in output, output
        assert "sweep 'refused' stopped" in output, output
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name("refused")
        assert experiment is not None
        runs = client.search_runs([experiment.experiment_id])
        assert runs and "RUNNING" not in {r.info.status for r in runs}, runs
        failed = [r for r in runs if r.data.tags.get(OUTCOME) == "failed"]
        assert len(failed) == 1 and "could not write" in failed[0].data.tags[TAG_REASON]
        assert failed[0].info.run_id in output
    trials = optuna_trials(tmp_path, "refused")
    assert not [t for t in trials if t.state.name == "RUNNING"], trials
    attempt = [t for t in trials if t.state.name == "FAIL"]
    assert len(attempt) == 1 and OUTCOME not in attempt[0].user_attrs  # it runs again
    assert "could not write" in attempt[0].user_attrs[MESSAGE]


def _unreachable_message(output: str, port: int) -> None:
    assert "Traceback" not in output, output
    assert f"MLflow tracking server http://127.0.0.1:{port} could not be reached" in output, output
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" in output and "Check that the server" in output


def test_a_tracking_server_that_cannot_be_reached_stops_the_sweep_with_a_message(
    tmp_path: Path,
) -> None:
    """Nothing listens on the port: the sweep ends at the parent run with a TrackingError naming
    the server and the fix, exit 1; its trials stay queued (WAITING) for the next run."""
    port = free_port()
    (tmp_path / "sw.yaml").write_text(SWEEP.format(name="away"))
    done = rnnlab(tmp_path, f"http://127.0.0.1:{port}", "sweep", "sw.yaml")
    output = output_of(done)
    assert done.returncode == 1, output
    _unreachable_message(output, port)
    states = {t.state.name for t in optuna_trials(tmp_path, "away")}
    assert states <= {"WAITING"}, states


def test_rnnlab_run_against_an_unreachable_server_prints_why_and_exits_1(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "run.yaml").write_text(textwrap.dedent(RUN))
    done = rnnlab(tmp_path, f"http://127.0.0.1:{port}", "run", "run.yaml")
    output = output_of(done)
    assert done.returncode == 1, output
    assert "not recorded in MLflow" in output, output
    _unreachable_message(output, port)  # the store could not be opened, and what to check
    assert "MlflowException" not in output, output  # MLflow's own error, not rnnlab's
    assert "TrackingError" not in output, output  # the message, not the class
    assert f"127.0.0.1:{port}" in output, output


LONG = SWEEP.replace("steps: 4,", "steps: 3000,").replace("log_every: 1,", "log_every: 20,")


@pytest.mark.slow  # two `mlflow server` starts and two sweeps: ~60 s on 2 idle cores
def test_a_tracking_server_lost_mid_trial_stops_the_sweep_and_the_next_start_ends_its_runs(
    tmp_path: Path, rnnlab_mlflow_template: Path
) -> None:
    """The server stops while a trial trains: the sweep stops with the TrackingError (exit 1),
    the attempt is failed in Optuna without an outcome and its run is left RUNNING (MLflow
    cannot be told). The next `rnnlab sweep`, the server back, ends that run KILLED
    (``stopped``, the attempt's message as its reason), runs the key again and leaves nothing
    RUNNING."""
    backend = tmp_path / "server.db"
    shutil.copy(rnnlab_mlflow_template, backend)
    artifacts = tmp_path / "artifacts"
    (tmp_path / "sw.yaml").write_text(LONG.format(name="lost"))
    local = MlflowClient(f"sqlite:///{backend}")  # the server's store, read while it is away
    with mlflow_server(f"sqlite:///{backend}", artifacts) as url:
        sweep = rnnlab(tmp_path, url, "sweep", "sw.yaml")
        deadline = time.monotonic() + 120
        while not [r for r in _runs(local, "lost") if r.data.tags.get("rnnlab.role") == "trial"]:
            assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
            time.sleep(0.1)
    output = output_of(sweep)  # the server stopped with the with-block
    assert sweep.returncode == 1, output
    _unreachable_message(output, int(url.rsplit(":", 1)[1]))
    assert "sweep 'lost' stopped" in output and "stay RUNNING" in output, output
    (attempt,) = [t for t in optuna_trials(tmp_path, "lost") if t.state.name == "FAIL"]
    assert OUTCOME not in attempt.user_attrs  # it runs again
    left = local.get_run(attempt.user_attrs[RUN_ID])
    assert left.info.status == "RUNNING"  # what a stop while MLflow is away leaves

    with mlflow_server(f"sqlite:///{backend}", artifacts) as url:
        again = rnnlab(tmp_path, url, "sweep", "sw.yaml")
        output = output_of(again)
        assert again.returncode == 0, output
    runs = _runs(local, "lost")
    assert "RUNNING" not in {r.info.status for r in runs}, [r.info for r in runs]
    ended = local.get_run(left.info.run_id)
    assert ended.info.status == "KILLED" and ended.data.tags[OUTCOME] == "stopped"
    reason = ended.data.tags[TAG_REASON]
    assert "could not be reached" in reason and "ended by the sweep's next start" in reason
    trials = optuna_trials(tmp_path, "lost")
    done = sorted(t.user_attrs[KEY] for t in trials if OUTCOME in t.user_attrs)
    assert len(done) == 2 and len(set(done)) == 2, done  # each point once, the lost one again


def _runs(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])
