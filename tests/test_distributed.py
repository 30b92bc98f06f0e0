"""Several coordinators on one sweep, with real servers on loopback: PostgreSQL (Debian's
packages) as Optuna's storage and `mlflow server` with a PostgreSQL backend as the tracking
server. Each `rnnlab sweep` stands for a machine; killing one's process group is losing it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from servers import MISSING, Postgres, mlflow_server, postgres, postgres_bin

from rnnlab._names import KEY, OUTCOME, OWNER, RUN_ID

SWEEP = """\
name: {name}
seed: 0
dataset: {{name: adding, seq_len: 8, val_size: 32}}
cell: {{name: faulty, hidden_size: 4, fault: slow}}
train: {{steps: {steps}, batch_size: 8, lr: 0.01, eval_every: 20, probe_every: 20, log_every: 5,
  device: cpu, plots: false, dynamics_every: 0}}
sweep:
  workers: 1
  seeds: [0, 1]
  space:
    train.lr: [0.01, 0.02, 0.03]
"""
TOGETHER = """\
name: {name}
seed: 0
dataset: {{name: adding, seq_len: 5, val_size: 16}}
cell: {{name: rnn, hidden_size: 4}}
train: {{steps: 3, batch_size: 4, lr: 0.01, eval_every: 3, probe_every: 3, log_every: 3,
  device: cpu, dynamics_every: 0}}
sweep:
  workers: 1
  seeds: [0]
  space:
    train.lr: [0.01, 0.02, 0.03]
"""
AT = """\
import sys, time
import rnnlab.cli, rnnlab.sweep, rnnlab.run, sqlalchemy, psycopg, mlflow  # before the start
start = float(sys.argv[1])
while time.time() < start:
    time.sleep(0.0005)
sys.argv = ["rnnlab", *sys.argv[2:]]
rnnlab.cli.main()
"""
"""Runs the real CLI from the moment ``start`` on, its imports done beforehand: processes given
the same moment reach the empty database within a millisecond of each other."""
HEARTBEAT = "2"  # seconds; a coordinator silent for 3 of them is taken for dead


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Postgres, str]]:
    if postgres_bin() is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    with postgres() as pg:
        backend = pg.create_database("mlflow")
        artifacts = tmp_path_factory.mktemp("mlflow") / "artifacts"
        with mlflow_server(backend, artifacts) as url:
            yield pg, url


def start(
    sweep_env: dict[str, str], path: Path, storage: str, tracking: str
) -> subprocess.Popen[str]:
    """One coordinator, in its own process group (a machine of its own)."""
    env = {**os.environ, **sweep_env, "MLFLOW_TRACKING_URI": tracking}
    command = ["sweep", str(path), "--storage", storage, "--heartbeat", HEARTBEAT]
    return subprocess.Popen(
        [sys.executable, "-m", "rnnlab", *command],
        cwd=path.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def trials(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    except KeyError:  # not created yet
        return []


def mid_trial(storage: str, name: str, machine: subprocess.Popen[str]) -> bool:
    """Whether ``machine``'s coordinator runs a trial whose MLflow run has started."""
    return any(
        t.state.name == "RUNNING"
        and t.user_attrs.get(OWNER, "").endswith(f":{machine.pid}")
        and RUN_ID in t.user_attrs
        for t in trials(storage, name)
    )


def wait_until(condition, what: str, timeout: float = 180) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def finish(processes: list[subprocess.Popen[str]], timeout: float = 300) -> list[str]:
    outputs = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=timeout)
            outputs.append(output)
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    return outputs


def assert_each_point_once(storage: str, name: str, tracking: str, points: int) -> list:
    """Optuna: every key has exactly one outcome, nothing RUNNING or WAITING. MLflow: one
    completed child run per key, nothing RUNNING, every run's host recorded; one parent."""
    everything = trials(storage, name)
    done = [t for t in everything if OUTCOME in t.user_attrs]
    keys = Counter(t.user_attrs[KEY] for t in done)
    assert len(keys) == points and set(keys.values()) == {1}, keys
    assert {t.user_attrs[OUTCOME] for t in done} == {"completed"}
    assert not [t for t in everything if t.state.name in ("RUNNING", "WAITING")]
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    parents = [r for r in runs if r.data.tags.get("rnnlab.role") == "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert "RUNNING" not in {r.info.status for r in children}
    completed = [r for r in children if r.data.tags["rnnlab.outcome"] == "completed"]
    assert len(completed) == points and {r.info.status for r in completed} == {"FINISHED"}
    by_run = {t.user_attrs.get(RUN_ID) for t in done}
    assert {r.info.run_id for r in completed} == by_run  # the recorded run is the completed one
    assert all(r.data.tags["rnnlab.host"] == socket.gethostname() for r in children)
    assert all(r.data.tags["rnnlab.device"] == "cpu" for r in completed)
    return children


def test_three_machines_one_lost_mid_trial(servers, sweep_env, tmp_path: Path) -> None:
    pg, tracking = servers
    storage = pg.create_database("lost")
    path = tmp_path / "lost.yaml"
    path.write_text(SWEEP.format(name="lost", steps=150))
    machines = [start(sweep_env, path, storage, tracking) for _ in range(3)]
    victim = machines[0]

    try:
        wait_until(lambda: mid_trial(storage, "lost", victim), "the first machine mid-trial")
        os.killpg(victim.pid, signal.SIGKILL)  # the machine is gone: coordinator and worker
        victim.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(victim.pid, signal.SIGKILL)
    outputs = finish(machines[1:])
    for machine, output in zip(machines[1:], outputs, strict=True):
        assert machine.returncode == 0, output
    children = assert_each_point_once(storage, "lost", tracking, points=6)
    # the lost machine's attempt: failed (it ran again elsewhere), saying why
    failed = [r for r in children if r.data.tags["rnnlab.outcome"] == "failed"]
    assert failed and {r.info.status for r in failed} == {"FAILED"}
    assert all(f":{victim.pid}" in r.data.tags["rnnlab.reason"] for r in failed)


@pytest.mark.slow  # ~45 s on 2 cores: in the slow CI step and nox -s science
def test_the_database_restarts_while_machines_run(servers, sweep_env, tmp_path: Path) -> None:
    pg, tracking = servers
    storage = pg.create_database("restart")
    path = tmp_path / "restart.yaml"
    path.write_text(SWEEP.format(name="restart", steps=100))
    machines = [start(sweep_env, path, storage, tracking) for _ in range(2)]
    try:
        wait_until(
            lambda: sum(OUTCOME in t.user_attrs for t in trials(storage, "restart")) >= 1,
            "a first finished trial",
        )
        pg.stop()  # a server restart: every connection drops
        time.sleep(3)
        pg.start()
    finally:
        outputs = finish(machines)
    for machine, output in zip(machines, outputs, strict=True):
        assert machine.returncode == 0, output
    assert any("unreachable" in output and "retrying" in output for output in outputs), outputs
    assert_each_point_once(storage, "restart", tracking, points=6)


@pytest.mark.slow  # ~60 s on 2 cores (it waits out the grace period): the slow CI step
def test_a_machine_frozen_past_the_grace_period_loses_its_trial_not_a_result(
    servers, sweep_env, tmp_path: Path
) -> None:
    pg, tracking = servers
    storage = pg.create_database("frozen")
    path = tmp_path / "frozen.yaml"
    path.write_text(SWEEP.format(name="frozen", steps=150))
    machines = [start(sweep_env, path, storage, tracking) for _ in range(2)]
    sleeper = machines[0]
    try:
        wait_until(lambda: mid_trial(storage, "frozen", sleeper), "the first machine mid-trial")
        os.killpg(sleeper.pid, signal.SIGSTOP)  # no heartbeat, no progress
        time.sleep(5 * int(HEARTBEAT) + 3)  # well past the grace period (3 heartbeats)
        os.killpg(sleeper.pid, signal.SIGCONT)
    finally:
        outputs = finish(machines)
    for machine, output in zip(machines, outputs, strict=True):
        assert machine.returncode == 0, output
    children = assert_each_point_once(storage, "frozen", tracking, points=6)
    void = [r for r in children if r.data.tags["rnnlab.outcome"] == "failed"]
    assert len(void) == 1 and void[0].info.status == "FAILED"
    assert "no heartbeat" in void[0].data.tags["rnnlab.reason"]


FOUND = """\
import sys, time
import optuna
from rnnlab.sweep._storage import storage_for
start = float(sys.argv[1])
while time.time() < start:
    time.sleep(0.0005)
storage = storage_for(sys.argv[2], 2)  # the schema, as rnnlab sweep creates it
try:
    optuna.create_study(storage=storage, study_name="s")  # the study, as SweepStudy does
    print("founder")
except optuna.exceptions.DuplicatedStudyError:
    optuna.load_study(storage=storage, study_name="s")
"""


@pytest.mark.slow  # ~45 s on 2 cores: in the slow CI step and nox -s science
def test_founders_released_in_the_same_instant_take_turns(servers) -> None:
    """Issue 18: 5 rounds of three processes opening one fresh database at the same instant.
    Without the founders' lock and the re-read, 8 of 8 rounds had a process die of PostgreSQL's
    UniqueViolation (CREATE TYPE studydirection), 15 of 24 processes (docs/distributed.md)."""
    pg, _ = servers
    for round_ in range(5):
        storage = pg.create_database(f"founders{round_}")
        start_at = time.time() + 6
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", FOUND, str(start_at), storage],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [p.communicate(timeout=120)[0] for p in processes]
        assert [p.returncode for p in processes] == [0, 0, 0], outputs
        assert sum(o.count("founder") for o in outputs) == 1, outputs


@pytest.mark.slow  # ~45 s on 2 cores: in the slow CI step and nox -s science
def test_machines_started_in_the_same_instant_on_an_empty_database(
    servers, sweep_env, tmp_path: Path
) -> None:
    """Issue 18, the whole command: three ``rnnlab sweep`` released at the same instant on an
    empty database; none crashes and the grid completes once."""
    pg, tracking = servers
    name = "together"
    storage = pg.create_database(name)  # a new, empty database each round
    path = tmp_path / f"{name}.yaml"
    path.write_text(TOGETHER.format(name=name))
    env = {**os.environ, **sweep_env, "MLFLOW_TRACKING_URI": tracking}
    start_at = time.time() + 20  # every process has imported everything by then
    command = ["sweep", str(path), "--storage", storage, "--heartbeat", HEARTBEAT]
    machines = [
        subprocess.Popen(
            [sys.executable, "-c", AT, str(start_at), *command],
            cwd=path.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        for _ in range(3)
    ]
    outputs = finish(machines)
    for machine, output in zip(machines, outputs, strict=True):
        assert machine.returncode == 0, output
        assert "Traceback" not in output, output
    assert_each_point_once(storage, name, tracking, points=3)
