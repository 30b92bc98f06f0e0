"""The dynamics in every run (issue 19): dyn/* metrics per layer, dynamics.npz, lyapunov.png,
model.pt, the schedule, layer k measured on what its cell saw, and ``rnnlab dynamics RUN_ID``
on a real MLflow store through the real CLI."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from rnnlab_cells.twins import ElmanCell
from torch import Tensor

import rnnlab
from rnnlab._names import (
    DYNAMICS_FILE,
    ISOMETRY_MAX,
    LYAPUNOV_MAX,
    LYAPUNOV_MEAN,
    LYAPUNOV_MIN,
    LYAPUNOV_PNG,
    MODEL_FILE,
)
from rnnlab.base import TaskKind
from rnnlab.cli import cli
from rnnlab.run import (
    NullTracker,
    build_model,
    layer_spectra,
    load_run_config,
    lyapunov_spectrum,
    run_loop,
    train,
)
from rnnlab.run._dynamics import scheduled

CONFIG = """\
name: dyn
seed: 0
dataset: {{name: adding, seq_len: 10, val_size: 40, test_size: 32}}
cell: {{name: rnn, hidden_size: 8}}
model: {{layers: 2}}
train: {{steps: {steps}, batch_size: 16, lr: {lr}, eval_every: 5, probe_every: 5, device: cpu,
        flush_denormal: false{extra}}}
"""


def _config(write_config, steps: int = 6, lr: float = 0.01, extra: str = "") -> Path:
    return write_config(CONFIG.format(steps=steps, lr=lr, extra=extra))


def test_scheduled_at_the_start_and_the_end_by_default() -> None:
    assert [d for d in range(11) if scheduled(None, d, 10)] == [0, 10]
    assert [d for d in range(11) if scheduled(4, d, 10)] == [0, 4, 8, 10]
    assert not [d for d in range(11) if scheduled(0, d, 10)]


def test_a_tracked_run_records_its_dynamics_and_its_model(write_config, mlflow_uri) -> None:
    path = _config(write_config)
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 0, result.output
    client = mlflow.MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("dyn").experiment_id])
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {DYNAMICS_FILE, MODEL_FILE} <= names
    deadline = time.monotonic() + 120  # the PNGs follow into the ended run (rnnlab.run._background)
    while LYAPUNOV_PNG not in names and time.monotonic() < deadline:
        time.sleep(0.2)
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert LYAPUNOV_PNG in names
    for key in (LYAPUNOV_MAX, LYAPUNOV_MEAN, LYAPUNOV_MIN, ISOMETRY_MAX):
        assert {m.step for m in client.get_metric_history(run.info.run_id, key)} >= {0}
        assert np.isfinite(run.data.metrics[f"{key}/layer0"])  # the lower layer, suffixed
    history = client.get_metric_history(run.info.run_id, LYAPUNOV_MAX)
    assert sorted(m.step for m in history) == [0, 6]  # before the first update, after the last
    assert ISOMETRY_MAX in run.data.metrics  # at init only
    assert [m.step for m in client.get_metric_history(run.info.run_id, ISOMETRY_MAX)] == [0]
    folder = Path(client.download_artifacts(run.info.run_id, DYNAMICS_FILE))
    with np.load(folder) as saved:
        assert list(saved["steps"]) == [0, 6]
        assert saved["exponents"].shape == (2, 2, 8)  # measures, layers, k = min(W, 32)
        assert saved["ftle"].shape == (2, 2, 10, 8)  # a QR window per step of T = 10
        assert saved["isometry"].shape == (2, 8, 8)  # layers, 8 sequences, W
        top = saved["exponents"][-1, -1]
        assert top[0] == pytest.approx(run.data.metrics[LYAPUNOV_MAX])
        assert np.all(np.diff(top) <= 0)  # descending
        # k = W: the exponents sum to the time mean of log|det J_t|
        assert top.sum() == pytest.approx(saved["log_det_mean"][-1, -1], abs=1e-4)
    payload = torch.load(client.download_artifacts(run.info.run_id, MODEL_FILE), weights_only=True)
    assert payload["step"] == 6 and payload["config"]["cell"]["name"] == "rnn"
    assert "cells.1.rnn.weight_hh_l0" in payload["state_dict"]  # both layers, and the head
    assert "head.weight" in payload["state_dict"]


def test_dynamics_every_measures_between_and_zero_turns_it_off(
    write_config, registry, tmp_path: Path
) -> None:
    every = load_run_config(_config(write_config, extra=", dynamics_every: 2"), registry)
    tracker = NullTracker()
    train(every, tracker)
    assert [s for s, _ in tracker.history[LYAPUNOV_MAX]] == [0, 2, 4, 6]
    assert DYNAMICS_FILE in tracker.artifacts and MODEL_FILE in tracker.artifacts
    off = load_run_config(_config(write_config, extra=", dynamics_every: 0"), registry)
    tracker = NullTracker()
    result = train(off, tracker)
    assert not [k for k in tracker.history if k.startswith("dyn/")]
    assert DYNAMICS_FILE not in tracker.artifacts and MODEL_FILE in tracker.artifacts
    assert LYAPUNOV_MAX not in result.metrics


def test_lyapunov_k_bounds_the_exponents(write_config, registry) -> None:
    run = load_run_config(_config(write_config, extra=", lyapunov_k: 3"), registry)

    class Keep(NullTracker):
        def log_artifacts(self, folder: Path) -> None:
            super().log_artifacts(folder)
            with np.load(folder / DYNAMICS_FILE) as saved:
                self.exponents = saved["exponents"]
                self.log_det = saved["log_det_mean"]

    tracker = Keep()
    train(run, tracker)
    assert tracker.exponents.shape == (2, 2, 3)
    assert np.isnan(tracker.log_det).all()  # k < W: no determinant


class Shift(rnnlab.Remedy):
    """Between layers, outputs -> 3 outputs + 0.5: a lower layer's input is not what it gave."""

    def after_layer(self, layer: int, inputs: Tensor, outputs: Tensor) -> Tensor:
        return 3.0 * outputs + 0.5


def test_a_layer_is_measured_on_what_its_cell_saw() -> None:
    """Layer 1's spectrum is that of its cell on layer 0's outputs after the remedies'
    after_layer, as in training, not on the raw outputs (nor on the task's inputs)."""
    torch.manual_seed(0)
    model = build_model(
        ElmanCell,
        ElmanCell.Params(),
        input_size=2,
        hidden_size=6,
        layers=2,
        output_size=1,
        kind=TaskKind.REGRESSION_LAST,
        remedies=[Shift(Shift.Params())],
    )
    x = torch.randn(15, 4, 2)
    _, spectra = layer_spectra(model, x, None)
    cells = model.layers()
    with torch.no_grad():
        raw = run_loop(cells[0], x, cells[0].init_state(4), None)
    seen = lyapunov_spectrum(cells[1], 3.0 * raw + 0.5)
    unshifted = lyapunov_spectrum(cells[1], raw)
    np.testing.assert_allclose(spectra[0].exponents, lyapunov_spectrum(cells[0], x).exponents)
    np.testing.assert_allclose(spectra[1].exponents, seen.exponents, atol=1e-6)
    assert np.abs(seen.exponents - unshifted.exponents).max() > 1e-2  # the shift matters


def _recorded(write_config, mlflow_uri: str) -> tuple[str, mlflow.entities.Run]:
    path = _config(write_config, steps=30, lr=0.05)
    assert CliRunner().invoke(cli, ["run", str(path)]).exit_code == 0
    client = mlflow.MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("dyn").experiment_id])
    return run.info.run_id, run


def _top(output: str) -> float:
    line = next(s for s in output.splitlines() if s.startswith("layer 1 (top): lambda max"))
    return float(line.split("lambda max ")[1].split(",")[0])


def test_rnnlab_dynamics_recomputes_a_recorded_runs_spectrum(write_config, mlflow_uri) -> None:
    run_id, run = _recorded(write_config, mlflow_uri)
    result = CliRunner().invoke(cli, ["dynamics", run_id])
    assert result.exit_code == 0, result.output
    assert "weights after 30 updates" in result.output
    assert "layer 0: lambda max" in result.output and "(k = 8 of 8)" in result.output
    client = mlflow.MlflowClient(mlflow_uri)
    history = {m.step: m.value for m in client.get_metric_history(run_id, LYAPUNOV_MAX)}
    final, init = history[30], history[0]
    # the trained weights, rebuilt: the final spectrum on fresh sequences, not the initial one
    assert abs(_top(result.output) - final) < abs(final - init) / 3
    longer = CliRunner().invoke(cli, ["dynamics", run_id, "--k", "3", "--steps", "25"])
    assert longer.exit_code == 0, longer.output
    assert "25 time steps" in longer.output and "(k = 3 of 8)" in longer.output


def test_rnnlab_dynamics_says_when_it_cannot(write_config, mlflow_uri) -> None:
    unknown = CliRunner().invoke(cli, ["dynamics", "0123456789abcdef"])
    assert unknown.exit_code == 1
    assert "no such run" in unknown.output and "Traceback" not in unknown.output
    mlflow.set_experiment("old")
    with mlflow.start_run() as old:  # a run from before model.pt: config.yaml alone
        mlflow.log_text("name: old\n", "config.yaml")
    missing = CliRunner().invoke(cli, ["dynamics", old.info.run_id])
    assert missing.exit_code == 1 and unknown.exception is not None
    assert f"has no {MODEL_FILE}" in missing.output and "Traceback" not in missing.output
