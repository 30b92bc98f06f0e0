"""A sweep started by the code before issue 16 (commit a74de04) resumes with today's code.

``tests/old_sweep/stores.tar.gz`` holds the Optuna journal and the MLflow store of
``tests/old_sweep/sweep.yaml`` as that code left them when it was stopped (Ctrl-C) after two
trials, with a third one in flight; ``tests/old_sweep/make.py`` says how it was made. Users'
stores hold exactly such studies and runs: the names in them (trial attributes, tags, metric keys,
artifact names) and the study's definition must still mean the same.
"""

from __future__ import annotations

import shutil
import sqlite3
import tarfile
from collections import Counter
from pathlib import Path

import optuna
from click.testing import CliRunner
from mlflow import MlflowClient
from optuna.storages.journal import JournalFileBackend

from rnnlab.cli import cli

HERE = Path(__file__).parent / "old_sweep"
OLD_ROOT = "/tmp/rnnlab-old-sweep"  # where make.py ran: the stores name it in absolute paths


def load(folder: Path) -> optuna.Study:
    """The sweep's study, read with Optuna alone (no rnnlab module in between)."""
    backend = JournalFileBackend(str(folder / "rnnlab-optuna.journal"))
    return optuna.load_study(study_name="old", storage=optuna.storages.JournalStorage(backend))


def unpack(folder: Path) -> None:
    """The old stores in ``folder``, their absolute paths moved there."""
    shutil.copy(HERE / "sweep.yaml", folder / "sweep.yaml")
    with tarfile.open(HERE / "stores.tar.gz") as archive:
        archive.extractall(folder, filter="data")
    journal = folder / "rnnlab-optuna.journal"
    journal.write_text(journal.read_text().replace(OLD_ROOT, str(folder)))
    with sqlite3.connect(folder / "mlflow.db") as db:
        for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
            db.execute(
                f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (OLD_ROOT, str(folder))
            )


def test_a_sweep_started_before_issue_16_resumes(sweep_env, tmp_path: Path) -> None:
    unpack(tmp_path)
    before = load(tmp_path)
    parent = before.user_attrs["rnnlab.parent_run_id"]
    kept = {
        t.user_attrs["rnnlab.key"]: t.user_attrs["rnnlab.run_id"]
        for t in before.trials
        if "rnnlab.outcome" in t.user_attrs
    }
    assert len(kept) == 2  # the old code's two finished trials

    result = CliRunner().invoke(cli, ["sweep", "sweep.yaml"])
    assert result.exit_code == 0, result.output
    assert "sweep 'old' done: completed 5, incompatible 1" in result.output

    study = load(tmp_path)
    assert study.user_attrs["rnnlab.parent_run_id"] == parent  # the same parent run, continued
    done = [t for t in study.trials if "rnnlab.outcome" in t.user_attrs]
    keys = Counter(t.user_attrs["rnnlab.key"] for t in done)
    assert len(keys) == 6 and set(keys.values()) == {1}, keys  # every point once, none twice
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
    for t in done:
        if t.user_attrs["rnnlab.key"] in kept:  # finished before: not run again
            assert t.user_attrs["rnnlab.run_id"] == kept[t.user_attrs["rnnlab.key"]]

    client = MlflowClient(sweep_env["MLFLOW_TRACKING_URI"])
    run = client.get_run(parent)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["sweep/completed"] == 5 and run.data.metrics["sweep/incompatible"] == 1
    experiment = client.get_experiment_by_name("old")
    children = [
        r
        for r in client.search_runs([experiment.experiment_id], max_results=100)
        if r.data.tags.get("mlflow.parentRunId") == parent
    ]
    outcomes = Counter((r.data.tags["rnnlab.outcome"], r.info.status) for r in children)
    assert outcomes == {
        ("completed", "FINISHED"): 5,
        ("incompatible", "FINISHED"): 1,
        ("stopped", "KILLED"): 1,  # the trial in flight at Ctrl-C, run again since
    }

    report = CliRunner().invoke(cli, ["report", "sweep.yaml", "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Finished: all 6 trials done." in page and 'alt="gradient flow"' in page
