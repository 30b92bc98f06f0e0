"""An MLflow artifact location that cannot be written (issue 18): the sweep stops with a message
naming the path, and leaves nothing RUNNING; from the start, or breaking mid-sweep (that trial's
attempt fails and runs again). The location is a path through a regular file (ENOTDIR), which
fails for root too (chmod does not stop root). And the coordinators' scratch folders, which a
later start removes once their coordinator is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from test_journal import SWEEP

from rnnlab.cli import cli
from rnnlab.errors import ArtifactError
from rnnlab.run import MlflowTracker
from rnnlab.sweep._owners import remove_dead_scratch, this_host
from rnnlab.sweep._trialruns import fail_run


def test_an_unwritable_artifact_location_stops_the_sweep_cleanly(sweep_env, tmp_path: Path):
    (tmp_path / "afile").write_text("not a folder")
    unwritable = tmp_path / "afile" / "artifacts"
    client = MlflowClient()
    client.create_experiment("sw", artifact_location=unwritable.as_uri())
    (tmp_path / "sw.yaml").write_text(SWEEP)

    result = CliRunner().invoke(cli, ["sweep", "sw.yaml"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
    assert "could not write the artifacts of MLflow run" in result.output, result.output
    assert str(unwritable) in result.output and "Not a directory" in result.output
    experiment = client.get_experiment_by_name("sw")
    runs = client.search_runs([experiment.experiment_id])
    assert runs and "RUNNING" not in {r.info.status for r in runs}
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "rnnlab-optuna.journal"))
    )
    trials = optuna.load_study(study_name="sw", storage=storage).get_trials()
    assert "RUNNING" not in {t.state.name for t in trials}


BREAKER = '''
import glob
import os
import time

import torch
import rnnlab
from rnnlab.base import Cell


class Breaker(Cell):
    """A tanh cell that breaks the sweep's artifact store ``store`` (in the workers' cwd) during
    its trial, once, when asked: as soon as the earlier trial's figures are in it, the folder is
    moved to ``store-saved`` and a regular file is put in its place, so every later write there
    fails (what a disk filling up does, and deterministic: ENOTDIR fails for root too)."""

    class Params(rnnlab.Params):
        breaks: bool = False

    def __init__(self, input_size, hidden_size, params=None):
        super().__init__(input_size, hidden_size, params)
        self.linear = torch.nn.Linear(input_size + hidden_size, hidden_size)

    def forward(self, x_t, state):
        if self.params.breaks and not os.path.exists("store-broken"):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if glob.glob("store/*/artifacts/gradient_flow.png"):
                    break
                time.sleep(0.05)
            os.rename("store", "store-saved")
            with open("store", "w") as f:
                f.write("a full disk")
            open("store-broken", "w").close()
        h = torch.tanh(self.linear(torch.cat((x_t, state[0]), dim=-1)))
        return h, (h,)


@rnnlab.hookimpl
def register_cells(register):
    register("breaker", Breaker)
'''

BREAKING = """\
name: sw
seed: 0
dataset: {name: adding, seq_len: 5, val_size: 16}
cell: {name: breaker, hidden_size: 4}
train: {steps: 3, batch_size: 4, lr: 0.01, eval_every: 3, probe_every: 1, log_every: 3,
  device: cpu, dynamics_every: 0}
sweep:
  workers: 1
  seeds: [0]
  space:
    cell.breaks: [false, true]
"""


def test_a_location_that_breaks_mid_sweep_fails_that_trial_which_runs_again(
    sweep_env, fake_dist, tmp_path: Path
):
    """Trial 0 completes (figures and all); trial 1 breaks the store while it trains, so its
    files cannot be written: that attempt ends failed (MLflow FAILED, the reason naming the
    path), its Optuna trial is failed without an outcome, the sweep stops with the message and
    nothing RUNNING; once the store is back, the same command runs trial 1's point again."""
    fake_dist("rnnlab-breaker", {"breaker": "breaker_plugin"}, {"breaker_plugin": BREAKER})
    store = tmp_path / "store"
    client = MlflowClient()
    client.create_experiment("sw", artifact_location=store.as_uri())
    (tmp_path / "sw.yaml").write_text(BREAKING)

    result = CliRunner().invoke(cli, ["sweep", "sw.yaml"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
    assert (tmp_path / "store-broken").exists()
    assert "could not write the artifacts of MLflow run" in result.output, result.output
    assert str(store) in result.output and "Not a directory" in result.output
    assert "trial 1 (cell.breaks=True s0) ended failed" in result.output, result.output
    assert "runs again" in result.output and "1 of 2 trials done" in result.output

    experiment = client.get_experiment_by_name("sw")
    runs = client.search_runs([experiment.experiment_id])
    assert "RUNNING" not in {r.info.status for r in runs}
    by_trial = {r.data.tags.get("rnnlab.trial"): r for r in runs}
    assert by_trial[None].info.status == "FAILED"  # the parent run
    done, broken = by_trial["0"], by_trial["1"]
    assert done.info.status == "FINISHED" and done.data.tags["rnnlab.outcome"] == "completed"
    assert broken.info.status == "FAILED" and broken.data.tags["rnnlab.outcome"] == "failed"
    reason = broken.data.tags["rnnlab.reason"]
    assert str(store) in reason and "Not a directory" in reason and "runs again" in reason
    saved = tmp_path / "store-saved" / done.info.run_id / "artifacts"
    assert {"gradient_flow.npz", "gradient_flow.png"} <= {p.name for p in saved.iterdir()}

    trials = {t.number: t for t in _study().get_trials()}
    assert "RUNNING" not in {t.state.name for t in trials.values()}
    assert trials[0].user_attrs["rnnlab.outcome"] == "completed"
    assert trials[1].state.name == "FAIL" and "rnnlab.outcome" not in trials[1].user_attrs
    assert "could not write the artifacts" in trials[1].user_attrs["rnnlab.message"]

    store.unlink()  # the disk fixed
    (tmp_path / "store-saved").rename(store)
    again = CliRunner().invoke(cli, ["sweep", "sw.yaml"])
    assert again.exit_code == 0, again.output
    trials = _study().get_trials()
    assert "RUNNING" not in {t.state.name for t in trials}
    outcomes = sorted(
        (t.params["cell.breaks"], t.user_attrs["rnnlab.outcome"])
        for t in trials
        if "rnnlab.outcome" in t.user_attrs
    )
    assert outcomes == [(False, "completed"), (True, "completed")], outcomes
    runs = client.search_runs([experiment.experiment_id])
    assert "RUNNING" not in {r.info.status for r in runs}
    parent = [r for r in runs if "rnnlab.trial" not in r.data.tags]
    assert [p.info.status for p in parent] == ["FINISHED"]
    (rerun,) = [
        r
        for r in runs
        if r.data.tags.get("rnnlab.trial") not in (None, "0", "1")
        and r.data.tags["rnnlab.outcome"] == "completed"
    ]
    files = {a.path for a in client.list_artifacts(rerun.info.run_id)}
    assert {"gradient_flow.npz", "gradient_flow.png"} <= files


def _study() -> optuna.Study:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("rnnlab-optuna.journal")
    )
    return optuna.load_study(study_name="sw", storage=storage)


def test_a_failed_run_whose_traceback_cannot_be_written_still_ends_failed(
    mlflow_uri: str, tmp_path: Path
):
    """The coordinator's own artifact write (a crashed trial's traceback.txt): the run ends
    FAILED, its reason naming the path, and the ArtifactError goes on to stop the sweep."""
    (tmp_path / "afile").write_text("not a folder")
    client = MlflowClient(mlflow_uri)
    client.create_experiment("tb", artifact_location=(tmp_path / "afile" / "a").as_uri())
    tracker = MlflowTracker(mlflow_uri)
    tracker.start("tb", "trial 0", {}, {})
    with pytest.raises(ArtifactError, match="Not a directory"):
        fail_run(tracker, "the worker process was killed by SIGSEGV during the trial")
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FAILED" and run.data.tags["rnnlab.outcome"] == "failed"
    assert str(tmp_path / "afile") in run.data.tags["rnnlab.reason"]


def test_scratch_folders_of_dead_coordinators_and_old_copies_are_removed(tmp_path: Path):
    host = this_host().replace(os.sep, "_").replace("-", "_")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that is gone (not reused this soon)
    mine = tmp_path / f"rnnlab-sweep-{host}-{os.getpid()}-abc"
    gone = tmp_path / f"rnnlab-sweep-{host}-{dead.pid}-def"
    elsewhere = tmp_path / f"rnnlab-sweep-otherhost-{dead.pid}-ghi"  # not this host's to judge
    old, new = tmp_path / "rnnlab-artifacts-old", tmp_path / "rnnlab-artifacts-new"
    for folder in (mine, gone, elsewhere, old, new):
        folder.mkdir()
        (folder / "model.pt").write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    removed = remove_dead_scratch(tmp_path)
    assert sorted(p.name for p in removed) == sorted([gone.name, old.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [mine.name, elsewhere.name, new.name]
    )
