"""The long-T regime (issue 20): experiments/adding-long.yaml at T=5000 through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lru", "mingru"])
def test_adding_at_T_5000_records_a_5000_point_curve(
    cell: str, tmp_path: Path, mlflow_uri: str
) -> None:
    """A few steps of `rnnlab run experiments/adding-long.yaml` (hidden 32): completes, and every
    probed step's curve in gradient_flow.npz has 5000 finite points."""
    sets = ["train.steps=3", "train.probe_every=1", "train.eval_every=3", "train.batch_size=8"]
    sets += ["dataset.val_size=16", "dataset.test_size=16", "train.plots=false"]
    from rnnlab.run import TrainConfig

    if "dynamics_every" in TrainConfig.model_fields:  # issue 19's spectra: T Jacobian QRs, not
        sets += ["train.dynamics_every=0"]  # what this test is about
    if cell != "lru":
        sets += ["cell={name: " + cell + ", hidden_size: 32}"]
    args = [sys.executable, "-m", "rnnlab", "run", str(ROOT / "experiments" / "adding-long.yaml")]
    for assignment in sets:
        args += ["--set", assignment]
    done = subprocess.run(
        args,
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed after 3 steps" in done.stdout + done.stderr
    client = mlflow.MlflowClient(mlflow_uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "adding-long"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["cell.name"] == cell and run.data.params["dataset.seq_len"] == "5000"
    folder = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "art")))
    flow = np.load(folder / "gradient_flow.npz")
    assert flow["norms"].shape == (3, 1, 5000)
    norms = flow["norms"]
    assert np.isfinite(norms).all() and (norms[..., -1] > 0).all()
    if cell == "lru":  # its ring (|lambda| >= 0.9) carries the gradient back to step 1
        assert (norms > 0).all()
    else:  # minGRU's gates start near 1/2: the gradient underflows (exact zeros) far back
        assert (norms[..., 0] == 0).all()
