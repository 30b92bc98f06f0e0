"""``rnnlab run``'s MLflow helper process (rnnlab.run.BackgroundTracker): every way a run ends
leaves it complete and correctly terminated in a real sqlite store, read back with MlflowClient.

The kill tests run the real CLI (``sys.executable -m rnnlab run``) and signal it for real.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rnnlab.run import BackgroundTracker, load_run_config, train
from rnnlab.run._drawing import ORDER_FILE
from tests.conftest import TINY

LONG = TINY.replace("steps: 6,", "steps: 100000,")  # runs until the test signals it


@pytest.fixture
def store(rnnlab_mlflow_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty store, migrated once per session (rnnlab's pytest plugin), copied per test."""
    shutil.copy(rnnlab_mlflow_template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def only_run(uri: str) -> Any:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def artifacts(uri: str, run_id: str) -> list[str]:
    from mlflow import MlflowClient

    return sorted(a.path for a in MlflowClient(uri).list_artifacts(run_id))


def history(uri: str, run_id: str, key: str) -> list[int]:
    from mlflow import MlflowClient

    return [m.step for m in MlflowClient(uri).get_metric_history(run_id, key)]


def wait_until(check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def running_with_metrics(uri: str) -> Callable[[], Any]:
    """A check: the one run, once it is RUNNING and has received some train/loss values."""
    from mlflow import MlflowClient

    def check() -> Any:
        client = MlflowClient(uri)
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        if runs and runs[0].info.status == "RUNNING" and "train/loss" in runs[0].data.metrics:
            return runs[0]
        return None

    return check


@pytest.fixture
def cli_run(tmp_path: Path, store: str) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``rnnlab run`` on a config text in the test's folder (its own process group)."""
    started: list[subprocess.Popen[str]] = []

    def start(text: str, *args: str, **env: str) -> subprocess.Popen[str]:
        (tmp_path / "run.yaml").write_text(text)
        command = [sys.executable, "-m", "rnnlab", "run", "run.yaml", *args]
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            env={**os.environ, "MLFLOW_TRACKING_URI": store, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a process group of its own, as a terminal gives a command
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_tracked_run_is_complete_with_its_figures(cli_run, store: str) -> None:
    process = cli_run(TINY)
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err
    run = only_run(store)
    assert run.info.status == "FINISHED" and run.data.tags["rnnlab.outcome"] == "completed"
    assert run.info.run_id in out  # the final message names the run
    assert history(store, run.info.run_id, "train/loss") == [0, 2, 4, 5]  # log_every 2, the end
    files = artifacts(store, run.info.run_id)
    for name in ("gradient_flow.png", "gradient_flow_curves.png", "lyapunov.png"):
        assert name in files  # drawn by the helper from the npz files
    assert "gradient_flow_target.png" not in files  # adding: a last-step task, the same curve
    assert ORDER_FILE not in files


def test_sigkill_of_rnnlab_run_ends_its_run_killed(cli_run, store: str) -> None:
    process = cli_run(LONG)
    wait_until(running_with_metrics(store), "the run to record metrics")
    process.kill()  # SIGKILL to the main process alone: its helper sees EOF
    process.wait(timeout=30)

    def ended() -> Any:
        run = only_run(store)
        return run if run.info.status != "RUNNING" else None

    run = wait_until(ended, "the helper to end the run")
    assert run.info.status == "KILLED"
    assert run.data.tags["rnnlab.outcome"] == "failed"
    assert "killed" in run.data.tags["rnnlab.reason"]


def test_ctrl_c_ends_the_run_killed_with_every_metric(cli_run, store: str) -> None:
    process = cli_run(LONG)
    run = wait_until(running_with_metrics(store), "the run to record metrics")

    def training() -> int | None:  # past the first, slow steps: steps take milliseconds now
        last = history(store, run.info.run_id, "train/loss")[-1]
        return last if last > 20 else None

    seen = wait_until(training, "steps past 20")  # sent at most 2 s ago; more are queued
    os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C does: the whole process group
    _, err = process.communicate(timeout=120)
    assert process.returncode != 0, err
    run = only_run(store)
    assert run.info.status == "KILLED", err
    assert run.data.tags["rnnlab.outcome"] == "failed"
    steps = history(store, run.info.run_id, "train/loss")
    assert steps and steps == sorted(steps)
    assert steps[-1] > seen  # the steps since the last message: the flush at the end


def test_a_diverged_run_is_finished_and_complete(write_config, registry, store: str) -> None:
    text = TINY.replace("lstm", "rnn").replace("[clip]", "[{name: relu, scale: 1000.0}]")
    tracker = BackgroundTracker(store)
    result = train(load_run_config(write_config(text), registry), tracker)
    assert result.outcome == "diverged" and tracker.error is None
    run = only_run(store)
    assert run.info.run_id == result.run_id and run.info.status == "FINISHED"
    assert run.data.tags["rnnlab.outcome"] == "diverged"
    assert run.data.metrics["diverged_at"] == 0
    assert "summary.json" in artifacts(store, run.info.run_id)


def test_an_mlflow_error_is_told_and_training_goes_on(cli_run) -> None:
    process = cli_run(TINY, "--tracking-uri", "nosuchscheme://store")
    out, err = process.communicate(timeout=180)
    assert process.returncode == 1
    assert "completed after 6 steps" in out  # the run trained and was summed up
    assert "not recorded in MLflow" in err and "creating the run failed" in err, err
    assert "nosuchscheme" in err


def test_a_store_that_never_answers_times_out(cli_run) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        process = cli_run(TINY, "--tracking-uri", uri, RNNLAB_TRACKING_TIMEOUT="3")
        out, err = process.communicate(timeout=180)
    assert process.returncode == 1 and "completed after 6 steps" in out
    assert "did not finish writing within 3 s" in err, err
    assert time.monotonic() - began < 120  # MLflow's own retries would take minutes


def test_a_bad_config_leaves_no_run(cli_run, store: str) -> None:
    process = cli_run(TINY.replace("steps: 6", "steps: -1"))
    _, err = process.communicate(timeout=180)
    assert process.returncode != 0 and "steps" in err
    from mlflow import MlflowClient

    client = MlflowClient(store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert client.search_runs(experiments) == []


GATE = '''\
"""A stand-in for matplotlib in the helper process: waits for the test's gate file, then
imports the real matplotlib in its place."""
import os, sys, time

while not os.path.exists(os.environ["RNNLAB_TEST_GATE"]):
    time.sleep(0.05)
sys.path.remove(os.environ["RNNLAB_TEST_SHADOW"])
del sys.modules["matplotlib"]
import matplotlib  # the real one, which the import of this module then returns
'''
PNGS = ("gradient_flow.png", "gradient_flow_curves.png", "lyapunov.png")


def _gated_run(write_config, registry, store, tmp_path, monkeypatch) -> tuple[Any, Path]:
    """Train TINY through a BackgroundTracker whose helper cannot import matplotlib (so cannot
    draw) until the returned gate file exists; return the tracker once train() has."""
    shadow = tmp_path / "shadow"
    (shadow / "matplotlib").mkdir(parents=True)
    (shadow / "matplotlib" / "__init__.py").write_text(GATE)
    gate = tmp_path / "gate"
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("RNNLAB_TEST_SHADOW", str(shadow))
    monkeypatch.setenv("RNNLAB_TEST_GATE", str(gate))
    tracker = BackgroundTracker(store, timeout=60)
    result = train(load_run_config(write_config(TINY), registry), tracker)
    assert result.outcome == "completed" and tracker.error is None, tracker.error
    return tracker, gate


def test_the_run_ends_before_its_figures_are_drawn(
    write_config, registry, store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train() (``rnnlab run``) returns once the run has ended with its metrics and files; the
    helper draws the PNGs after that and logs them into the ended run."""
    tracker, gate = _gated_run(write_config, registry, store, tmp_path, monkeypatch)
    run = only_run(store)  # the helper cannot have drawn: matplotlib is behind the gate
    assert run.info.status == "FINISHED" and run.data.tags["rnnlab.outcome"] == "completed"
    files = artifacts(store, run.info.run_id)
    assert {"gradient_flow.npz", "dynamics.npz", "config.yaml", "summary.json"} <= set(files)
    assert not set(PNGS) & set(files) and ORDER_FILE not in files
    assert tracker.process.poll() is None  # still there, waiting to draw
    gate.touch()
    tracker.process.wait(timeout=120)
    files = artifacts(store, run.info.run_id)
    assert set(PNGS) <= set(files), files  # at the run's root, beside the arrays
    assert ORDER_FILE not in files and ".drawn" not in files
    assert only_run(store).info.status == "FINISHED"


def test_a_helper_killed_while_drawing_leaves_the_run_ended_with_its_data(
    write_config, registry, store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker, _ = _gated_run(write_config, registry, store, tmp_path, monkeypatch)
    tracker.process.kill()
    tracker.process.wait(timeout=30)
    run = only_run(store)
    assert run.info.status == "FINISHED"
    assert "gradient_flow.npz" in artifacts(store, run.info.run_id)  # the curves, for the report
    assert history(store, run.info.run_id, "train/loss") == [0, 2, 4, 5]
