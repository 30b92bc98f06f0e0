"""Sweeps end to end: real worker processes, a real Optuna journal, a real MLflow store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from rnnlab._names import KEY, KILLED_BY, OUTCOME
from rnnlab.cli import cli
from rnnlab.errors import ConfigError
from rnnlab.run import ORDER_FILE
from rnnlab.sweep import storage_for

BASE = """\
name: {name}
seed: 0
dataset: {{name: adding, seq_len: 8, val_size: 32}}
cell: {{name: faulty, hidden_size: 4}}
train: {{steps: {steps}, batch_size: 8, lr: 0.01, eval_every: 4, probe_every: 4, log_every: 2
  {extra}}}
sweep:
{sweep}
"""
LEAN = ", plots: false, dynamics_every: 0"  # after log_every
"""What the sweep-machinery tests leave out (:func:`lean`): figures and spectra are per-trial
work that test_grid_with_two_workers_runs_every_point_once (and the run and report tests) cover."""


def write(tmp_path: Path, sweep: str, name: str = "sw", steps: int = 8, extra: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    text = BASE.format(name=name, steps=steps, extra=extra, sweep=textwrap.indent(sweep, "  "))
    path.write_text(text)
    return path


def lean(tmp_path: Path, sweep: str, name: str = "sw", steps: int = 8) -> Path:
    """:func:`write` without the figures and the spectra (the machinery's tests)."""
    return write(tmp_path, sweep, name, steps, extra=LEAN)


def trials(tmp_path: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    storage = storage_for(str(tmp_path / "rnnlab-optuna.journal"))
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def child_runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def assert_exactly_once(tmp_path: Path, study: str, expected: int) -> list:
    done = [t for t in trials(tmp_path, study) if OUTCOME in t.user_attrs]
    keys = Counter(t.user_attrs[KEY] for t in done)
    assert len(keys) == expected and set(keys.values()) == {1}, keys
    assert not [t for t in trials(tmp_path, study) if t.state.name in ("RUNNING", "WAITING")]
    return done


def test_grid_with_two_workers_runs_every_point_once(sweep_env, tmp_path) -> None:
    path = write(
        tmp_path,
        "seeds: [0, 1]\nworkers: 2\nspace:\n  train.lr: [0.01, 0.02]\n"
        "  remedies: [[], [clip], [gating]]\n",
    )
    result = CliRunner().invoke(cli, ["sweep", str(path)])
    assert result.exit_code == 0, result.output
    assert "sweep 'sw' done: completed 12" in result.output
    done = assert_exactly_once(tmp_path, "sw", 12)
    assert {t.state.name for t in done} == {"COMPLETE"}
    runs = child_runs(sweep_env["MLFLOW_TRACKING_URI"], "sw")
    assert len(runs) == 12 and {r.info.status for r in runs} == {"FINISHED"}
    tags = runs[0].data.tags
    assert tags["rnnlab.sweep"] == "sw" and tags["rnnlab.trial"].isdigit()
    assert tags["rnnlab.slot"] in ("cpu 0", "cpu 1") and tags["rnnlab.cell"] == "faulty"
    parent = MlflowClient(sweep_env["MLFLOW_TRACKING_URI"]).get_run(
        runs[0].data.tags["mlflow.parentRunId"]
    )
    assert parent.info.status == "FINISHED" and parent.data.metrics["sweep/completed"] == 12
    artifacts = {a.path for a in MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"sweep.yaml", "sweep-resolved.yaml", "summary.md", "summary.yaml"} <= artifacts
    # every trial's metrics arrived through the single writer
    client = MlflowClient()
    for run in runs:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [0, 4, 8]
        # drawn off the slots (rnnlab.sweep._figurework), logged before the run was ended
        files = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"gradient_flow.png", "gradient_flow_curves.png"} <= files, files
        assert ORDER_FILE not in files
    # the summary table in the terminal: one row per lr x remedies, seeds pooled
    assert "val/loss mean ± std" in result.output and result.output.count("│ 0.0") >= 6


def test_faults_are_recorded_and_the_sweep_goes_on(sweep_env, tmp_path) -> None:
    path = lean(
        tmp_path,
        "workers: 2\nspace:\n  cell.fault: [none, raise, abort, nan]\n  cell.after: [30]\n",
        steps=8,
    )
    result = CliRunner().invoke(cli, ["sweep", str(path)])
    assert result.exit_code == 0, result.output
    done = {t.params["cell.fault"]: t for t in assert_exactly_once(tmp_path, "sw", 4)}
    assert {k: t.user_attrs[OUTCOME] for k, t in done.items()} == {
        "none": "completed",
        "raise": "failed",
        "abort": "failed",
        "nan": "diverged",
    }
    assert "SIGABRT" in done["abort"].user_attrs["rnnlab.message"]
    runs = {
        r.data.params.get("cell.fault", r.data.params.get("cell.fault")): r
        for r in child_runs(sweep_env["MLFLOW_TRACKING_URI"], "sw")
    }
    client = MlflowClient()
    by_outcome = {r.data.tags["rnnlab.outcome"]: r for r in runs.values()}
    assert set(by_outcome) == {"completed", "failed", "diverged"}
    failed = [r for r in runs.values() if r.data.tags["rnnlab.outcome"] == "failed"]
    assert len(failed) == 2 and {r.info.status for r in failed} == {"FAILED"}
    for run in failed:
        folder = Path(client.download_artifacts(run.info.run_id, "traceback.txt"))
        text = folder.read_text()
        assert "the faulty cell raised" in text or "SIGABRT" in text
    assert by_outcome["diverged"].info.status == "FINISHED"


def test_a_killed_workers_trial_runs_again_until_its_retries_are_spent(sweep_env, tmp_path):
    """SIGKILL of a worker mid-trial (the OOM killer, a lost process) is not the trial's fault:
    the attempt's run ends stopped/KILLED and the trial runs again, sweep.kill_retries times."""
    path = lean(
        tmp_path,
        "workers: 1\nkill_retries: 1\nspace:\n  cell.fault: [kill_once, kill]\n  cell.after: [2]\n",
    )
    result = CliRunner().invoke(cli, ["sweep", str(path)])
    assert result.exit_code == 0, result.output
    done = {t.params["cell.fault"]: t for t in assert_exactly_once(tmp_path, "sw", 2)}
    assert done["kill_once"].user_attrs[OUTCOME] == "completed"  # the second attempt
    assert done["kill"].user_attrs[OUTCOME] == "failed"  # killed again: the retry is spent
    assert "SIGKILL" in done["kill"].user_attrs["rnnlab.message"]
    attempts = Counter(
        t.params["cell.fault"] for t in trials(tmp_path, "sw") if KILLED_BY in t.user_attrs
    )
    assert attempts == {"kill_once": 1, "kill": 1}
    runs = child_runs(sweep_env["MLFLOW_TRACKING_URI"], "sw")
    stopped = [r for r in runs if r.data.tags[OUTCOME] == "stopped"]
    assert len(runs) == 4 and len(stopped) == 2
    assert {r.info.status for r in stopped} == {"KILLED"}
    assert all("runs again (attempt 1 of 1" in r.data.tags["rnnlab.reason"] for r in stopped)
    assert "RUNNING" not in {r.info.status for r in runs}


def test_incompatible_points_are_recorded_without_training(sweep_env, tmp_path) -> None:
    path = lean(tmp_path, "workers: 1\nspace:\n  cell.name: [rnn, lstm]\n  remedies: [[relu]]\n")
    result = CliRunner().invoke(cli, ["sweep", str(path)])
    assert result.exit_code == 0, result.output
    done = {t.params["cell.name"]: t for t in assert_exactly_once(tmp_path, "sw", 2)}
    assert done["lstm"].user_attrs[OUTCOME] == "incompatible"
    assert done["lstm"].state.name == "FAIL" and done["rnn"].state.name == "COMPLETE"
    runs = child_runs(sweep_env["MLFLOW_TRACKING_URI"], "sw")
    lstm = next(r for r in runs if r.data.tags["rnnlab.cell"] == "lstm")
    assert lstm.data.tags["rnnlab.outcome"] == "incompatible"
    assert "identity_init" in lstm.data.tags["rnnlab.reason"]


@pytest.mark.no_store
def test_dry_run_prints_the_plan_and_creates_nothing(sweep_env, tmp_path) -> None:
    path = lean(
        tmp_path, "seeds: [0, 1]\nspace:\n  cell.name: [rnn, lstm]\n  remedies: [[], [relu]]\n"
    )
    result = CliRunner().invoke(cli, ["sweep", str(path), "--dry-run", "--workers", "3"])
    assert result.exit_code == 0, result.output
    assert "4 combinations x 2 seeds = 8 trials" in result.output
    assert "cell.name=lstm remedies=relu  [incompatible: remedy 'relu'" in result.output
    assert "slots: cpu 0, cpu 1, cpu 2" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site", "sw.yaml"]


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ("space:\n  train.lr: {low: 0.001, high: 0.1}\n", "a range cannot be a grid axis"),
        ("space:\n  train.lrr: [0.1]\n", "'train.lrr' is not a key of the run config"),
        ("space:\n  cell.name: [lstm, lstmm]\n", "Did you mean 'lstm'?"),
        ("sampler: tpe\nspace:\n  train.lr: [0.1]\n", "sampler 'tpe' needs `trials: N`"),
        ("samplr: tpe\n", "unknown key 'samplr'"),
        ("objective: {metric: val/acc}\n", "metric must be one of"),
    ],
    ids=["range-in-grid", "unknown-key", "unknown-plugin", "no-trials", "typo", "objective"],
)
@pytest.mark.no_store
def test_bad_sweep_files_exit_2_before_anything_starts(
    sweep_env, tmp_path, sweep, expected
) -> None:
    path = lean(tmp_path, sweep)
    result = CliRunner().invoke(cli, ["sweep", str(path)])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert str(path) in result.output or "--set" in result.output
    assert "line" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site", "sw.yaml"]


def test_a_changed_file_is_refused_unless_fresh(sweep_env, tmp_path) -> None:
    path = lean(tmp_path, "workers: 1\nspace:\n  train.lr: [0.01]\n", steps=4)
    assert CliRunner().invoke(cli, ["sweep", str(path)]).exit_code == 0
    path.write_text(path.read_text().replace("lr: [0.01]", "lr: [0.02]"))
    refused = CliRunner().invoke(cli, ["sweep", str(path)])
    assert refused.exit_code == 2
    assert "-    - 0.01" in refused.output and "+    - 0.02" in refused.output
    assert "--fresh" in refused.output
    fresh = CliRunner().invoke(cli, ["sweep", str(path), "--fresh"])
    assert fresh.exit_code == 0, fresh.output
    assert "sweep 'sw#2' done: completed 1" in fresh.output


def test_median_pruner_stops_a_hopeless_trial(sweep_env, tmp_path) -> None:
    path = lean(
        tmp_path,
        "workers: 1\npruner: median\nseeds: [0, 1]\nspace:\n  train.lr: [0.05, 0.000001]\n",
        steps=16,
    )
    result = CliRunner().invoke(cli, ["sweep", str(path)])
    assert result.exit_code == 0, result.output
    outcomes = Counter(t.user_attrs[OUTCOME] for t in assert_exactly_once(tmp_path, "sw", 4))
    assert outcomes["pruned"] >= 1 and outcomes["completed"] >= 2


def _start(env: dict[str, str], args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from rnnlab.cli import main; main()", *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(tmp_path: Path, study: str, finished: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        journal = tmp_path / "rnnlab-optuna.journal"
        if journal.exists():
            try:  # the sweep is writing the journal meanwhile: a read may see half a record
                current = trials(tmp_path, study)
            except Exception:
                current = []
            done = [t for t in current if OUTCOME in t.user_attrs]
            running = [t for t in current if t.state.name == "RUNNING"]
            if len(done) >= finished and running:
                return
        time.sleep(0.3)
    raise AssertionError("the sweep did not get going")


def test_sigkill_mid_trial_then_rerun_completes_exactly_once(sweep_env, tmp_path) -> None:
    path = lean(
        tmp_path,
        "workers: 2\nseeds: [0, 1, 2]\nspace:\n  cell.fault: [slow]\n  train.lr: [0.01, 0.02]\n",
        steps=40,
    )
    scratch = tmp_path / "tmp"  # TMPDIR: where a coordinator keeps its scratch folder
    scratch.mkdir()
    env = {**sweep_env, "TMPDIR": str(scratch)}
    process = _start(env, ["sweep", str(path)], tmp_path)
    try:
        _wait_for(tmp_path, "sw", finished=1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    time.sleep(1.5)  # the orphaned workers notice their coordinator is gone
    (left,) = [p.name for p in scratch.iterdir() if p.name.startswith("rnnlab-")]
    assert left.startswith("rnnlab-sweep-") and f"-{process.pid}-" in left  # the killed one's
    rerun = _start(env, ["sweep", str(path)], tmp_path)
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output
    # the rerun removed the dead coordinator's folder when it started, and its own on exit
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("rnnlab-")]
    assert_exactly_once(tmp_path, "sw", 6)
    runs = child_runs(sweep_env["MLFLOW_TRACKING_URI"], "sw")
    assert "RUNNING" not in {r.info.status for r in runs}
    finished = [r for r in runs if r.data.tags["rnnlab.outcome"] == "completed"]
    # the attempts the dead coordinator left: failed, saying why, and run again
    lost = [r for r in runs if r.data.tags["rnnlab.outcome"] == "failed"]
    assert len(finished) == 6 and lost and {r.info.status for r in lost} == {"FAILED"}
    assert all("coordinator" in r.data.tags["rnnlab.reason"] for r in lost)
    parents = [
        r
        for r in MlflowClient().search_runs(
            [MlflowClient().get_experiment_by_name("sw").experiment_id]
        )
        if r.data.tags.get("rnnlab.role") == "sweep"
    ]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # the resume reused it


DIE_BEFORE_NOTING_THE_RUN = """\
import os
from rnnlab._names import RUN_ID
from rnnlab.cli import main
from rnnlab.sweep import SweepStudy

def note(self, task, key, value):  # killed after MLflow created the run, before the trial knew it
    if key == RUN_ID:
        os._exit(9)

SweepStudy.note = note
main()
"""


def test_a_run_created_just_before_the_kill_is_closed_by_the_rerun(sweep_env, tmp_path) -> None:
    path = lean(tmp_path, "workers: 1\nseeds: [0, 1]\n")
    dying = subprocess.run(
        [sys.executable, "-c", DIE_BEFORE_NOTING_THE_RUN, "sweep", str(path)],
        cwd=tmp_path,
        env={**os.environ, **sweep_env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dying.returncode == 9, dying.stdout + dying.stderr
    (orphan,) = child_runs(sweep_env["MLFLOW_TRACKING_URI"], "sw")
    assert orphan.info.status == "RUNNING"
    rerun = _start(sweep_env, ["sweep", str(path)], tmp_path)
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output
    assert_exactly_once(tmp_path, "sw", 2)
    closed = MlflowClient().get_run(orphan.info.run_id)
    assert closed.info.status == "FAILED"
    assert "coordinator" in closed.data.tags["rnnlab.reason"]


def test_ctrl_c_stops_cleanly_and_a_sampler_reaches_its_total(sweep_env, tmp_path) -> None:
    path = lean(
        tmp_path,
        "sampler: random\ntrials: 3\nseeds: [0, 1]\nworkers: 2\n"
        "space:\n  cell.fault: [slow]\n  train.lr: {low: 0.001, high: 0.1, log: true}\n",
        steps=40,
    )
    process = _start(sweep_env, ["sweep", str(path)], tmp_path)
    try:
        _wait_for(tmp_path, "sw", finished=1)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, output
    assert "Run the same command again to resume" in output
    assert not [t for t in trials(tmp_path, "sw") if t.state.name == "RUNNING"]
    runs = child_runs(sweep_env["MLFLOW_TRACKING_URI"], "sw")
    assert "RUNNING" not in {r.info.status for r in runs}
    rerun = _start(sweep_env, ["sweep", str(path)], tmp_path)
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output
    done = assert_exactly_once(tmp_path, "sw", 6)
    configs = Counter(t.user_attrs["rnnlab.config"] for t in done)
    assert len(configs) == 3 and set(configs.values()) == {2}  # 3 configurations x 2 seeds


def test_slots_one_per_gpu_or_dividing_the_cores(monkeypatch) -> None:
    from rnnlab.sweep import _workers as workers

    monkeypatch.setattr(workers, "cpu_cores", lambda: 16)
    monkeypatch.setattr(workers, "visible_gpus", lambda: ["0", "1", "2"])
    slots = workers.plan_slots("auto", ["0", "2"], trials=10)
    assert [(s.label(), s.env(), s.threads) for s in slots] == [
        ("gpu 0", {"CUDA_VISIBLE_DEVICES": "0"}, 8),
        ("gpu 2", {"CUDA_VISIBLE_DEVICES": "2"}, 8),
    ]
    shared = workers.plan_slots(3, ["1"], trials=10)  # three slots on one GPU, told apart
    assert [(s.gpu, s.label()) for s in shared] == [
        ("1", "gpu 1"),
        ("1", "gpu 1 #2"),
        ("1", "gpu 1 #3"),
    ]
    monkeypatch.setattr(workers, "visible_gpus", lambda: [])
    with pytest.raises(
        ConfigError, match="--gpus 0: GPU 0 is not visible here .visible GPUs: none"
    ):
        workers.plan_slots("auto", ["0"], trials=10)
    cpu = workers.plan_slots("auto", None, trials=100)
    assert len(cpu) == 16 and {s.threads for s in cpu} == {1} and cpu[0].env() == {}
    assert len(workers.plan_slots("auto", None, trials=3)) == 3  # never more slots than trials
    assert {s.threads for s in workers.plan_slots(4, None, trials=10)} == {4}


def test_four_workers_share_one_store_without_losing_anything(sweep_env, tmp_path) -> None:
    path = lean(
        tmp_path, "workers: 4\nseeds: [0, 1, 2, 3]\nspace:\n  train.lr: [0.01, 0.02]\n", steps=12
    )
    result = CliRunner().invoke(cli, ["sweep", str(path)])
    assert result.exit_code == 0, result.output
    assert_exactly_once(tmp_path, "sw", 8)
    client = MlflowClient()
    runs = child_runs(sweep_env["MLFLOW_TRACKING_URI"], "sw")
    assert len(runs) == 8 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["rnnlab.slot"] for r in runs}) == 4
    for run in runs:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [
            0,
            4,
            8,
            12,
        ]
        assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 7  # 0,2,..,10, 11


def test_storage_url_and_overrides(sweep_env, tmp_path) -> None:
    path = lean(tmp_path, "workers: 1\nspace:\n  train.lr: [0.01, 0.02]\n", steps=40)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = CliRunner().invoke(
        cli,
        [
            "sweep",
            str(path),
            "--storage",
            url,
            "--set",
            "train.steps=4",
            "--set",
            "sweep.seeds=[3]",
        ],
    )
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "rnnlab-optuna.journal").exists()
    done = optuna.load_study(study_name="sw", storage=url).get_trials()
    assert len(done) == 2 and {t.user_attrs["rnnlab.seed"] for t in done} == {3}
    runs = child_runs(sweep_env["MLFLOW_TRACKING_URI"], "sw")
    assert {r.data.params["train.steps"] for r in runs} == {"4"}
    assert {r.data.tags["rnnlab.seed"] for r in runs} == {"3"}
