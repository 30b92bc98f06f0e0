"""MLflow opens where the answer is (issue 21): every experiment rnnlab creates or reuses is
marked as a training experiment, and `rnnlab run` / `rnnlab sweep` end with the deep links to
the experiment's runs page and to the run (the sweep's parent run), in a real sqlite store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from rnnlab._names import CUSTOM_MODEL_DEVELOPMENT, EXPERIMENT_KIND, PARENT, ui_links
from rnnlab.cli import cli

RUN = """\
name: linked
dataset: {name: adding, seq_len: 6, val_size: 16, test_size: 16}
cell: {name: rnn, hidden_size: 4}
train: {steps: 2, batch_size: 4, eval_every: 2, probe_every: 2, log_every: 1, device: cpu,
        plots: false}
"""
SWEEP = RUN + "sweep:\n  workers: 1\n  seeds: [0]\n  space:\n    cell.name: [rnn, gru]\n"


def _invoke(folder: Path, *args: str) -> str:
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("CUDA_VISIBLE_DEVICES", "")
        result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_run_marks_a_reused_experiment_and_prints_its_links(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    old = client.create_experiment("linked")  # an experiment from before rnnlab marked it
    assert EXPERIMENT_KIND not in client.get_experiment(old).tags
    (tmp_path / "run.yaml").write_text(RUN)
    output = _invoke(tmp_path, "run", str(tmp_path / "run.yaml"))
    assert client.get_experiment(old).tags[EXPERIMENT_KIND] == CUSTOM_MODEL_DEVELOPMENT
    (run,) = client.search_runs([old])
    runs, page = ui_links("http://127.0.0.1:5000", old, run.info.run_id)
    assert f"the run {page}\n" in output
    assert f"the runs: {runs}\n" in output
    assert f"--backend-store-uri {uri}" in output


def test_sweep_creates_a_marked_experiment_and_prints_the_parent_runs_links(
    tmp_path: Path,
) -> None:
    import optuna

    (tmp_path / "sweep.yaml").write_text(SWEEP)
    output = _invoke(tmp_path, "sweep", str(tmp_path / "sweep.yaml"))
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("linked")
    assert experiment is not None
    assert experiment.tags[EXPERIMENT_KIND] == CUSTOM_MODEL_DEVELOPMENT
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "rnnlab-optuna.journal"))
    )
    (summary,) = optuna.get_all_study_summaries(storage)
    parent = str(summary.user_attrs[PARENT])
    runs, page = ui_links("http://127.0.0.1:5000", experiment.experiment_id, parent)
    assert f"  the runs: {runs}\n" in output
    assert f"  the parent run: {page}\n" in output
    assert client.get_run(parent).info.experiment_id == experiment.experiment_id
    assert re.search(r"`rnnlab ui` \(or `mlflow ui --backend-store-uri sqlite:///", output)
