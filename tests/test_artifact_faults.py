"""An MLflow artifact location that cannot be written (issue 18): the sweep stops with a message
naming the path, and leaves nothing RUNNING. The location is a path through a regular file
(ENOTDIR), which fails for root too (chmod does not stop root)."""

from __future__ import annotations

from pathlib import Path

import optuna
from click.testing import CliRunner
from mlflow import MlflowClient
from test_journal import SWEEP

from rnnlab.cli import cli


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
