"""``rnnlab dynamics RUN_ID``: a recorded run's Lyapunov spectra, recomputed on fresh sequences.

The run's ``model.pt`` (its final weights and resolved config, saved by every tracked run since
issue 19) is downloaded from MLflow, the model is rebuilt from the config through the plugin
registry exactly as training built it, and every layer's spectrum is measured on sequences of
the run's task it never trained on (the training stream of the task seeded with ``--seed``,
default the run's seed + 1), laid end to end to ``--steps`` time steps: the measurement of
rnnlab.run._dynamics, layer by layer through the model's own forward.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rnnlab.commands._common import quiet_mlflow
from rnnlab.errors import RnnlabError

if TYPE_CHECKING:
    from rnnlab.plugins import Registry

PER_LINE = 8  # exponents per printed line


def _load(run_id: str, tracking_uri: str | None) -> tuple[Any, dict[str, Any]]:
    """The MLflow run and its ``model.pt`` payload; a clear error when either is missing."""
    import mlflow
    import torch
    from mlflow.exceptions import MlflowException

    from rnnlab._names import MODEL_FILE

    quiet_mlflow()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri or mlflow.get_tracking_uri()
    client = mlflow.MlflowClient(tracking_uri=uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise RnnlabError(
            f"run {run_id!r}: no such run in the MLflow store {uri} (pass --tracking-uri for "
            "another store; `mlflow ui` lists the run ids)"
        ) from None
    if MODEL_FILE not in {a.path for a in client.list_artifacts(run_id)}:
        raise RnnlabError(
            f"run {run_id!r} has no {MODEL_FILE}: it was recorded before rnnlab saved each run's "
            f"weights (issue 19), or it never reached its artifacts; train its config.yaml again "
            "(`rnnlab run`) to analyse it"
        )
    with tempfile.TemporaryDirectory(prefix="rnnlab-dynamics-") as folder:
        path = client.download_artifacts(run_id, MODEL_FILE, folder)
        payload: dict[str, Any] = torch.load(Path(path), map_location="cpu", weights_only=True)
    return run, payload


def _sequences(dataset: Any, count: int, steps: int | None) -> Any:
    """``[T, count, input_size]``: the stream's batches laid end to end to ``steps`` (default:
    one batch's length)."""
    import torch

    stream = dataset.batches("train", count)
    parts = [next(stream)[0]]
    if steps is not None:
        while sum(p.shape[0] for p in parts) < steps:
            parts.append(next(stream)[0])
    x = torch.cat(parts, dim=0)
    return x if steps is None else x[:steps]


def dynamics_of_run(
    registry: Registry,
    run_id: str,
    *,
    k: int | None,
    steps: int | None,
    sequences: int,
    seed: int | None,
    tracking_uri: str | None,
) -> int:
    """``rnnlab dynamics``: print each layer's spectrum of a recorded run; the exit code."""
    import torch

    from rnnlab._names import LYAPUNOV_MAX, layer_key
    from rnnlab.run import Source, build, layer_spectra, resolve, state_width

    run, payload = _load(run_id, tracking_uri)
    resolved = resolve(Source(None, payload["config"]), registry)
    torch.manual_seed(resolved.config.seed)
    _, _, model = build(resolved, torch.device("cpu"))
    model.load_state_dict(payload["state_dict"])
    seed = resolved.config.seed + 1 if seed is None else seed
    dataset = resolved.dataset.cls(resolved.dataset.params, seed)
    x = _sequences(dataset, sequences, steps)
    traces, spectra = layer_spectra(model, x, k)
    click.echo(
        f"run {run_id} ({run.info.run_name}): {resolved.cell.name} on {resolved.dataset.name}, "
        f"weights after {payload.get('step', '?')} updates"
    )
    click.echo(
        f"{x.shape[1]} fresh sequences of the task (seed {seed}), {x.shape[0]} time steps; "
        "exponents in nats per time step, batch mean, descending"
    )
    layers = len(spectra)
    for layer, spectrum in enumerate(spectra):
        values = spectrum.exponents
        width = state_width(traces[layer].states[0])
        name = f"layer {layer}" + (" (top)" if layer == layers - 1 and layers > 1 else "")
        recorded = run.data.metrics.get(layer_key(LYAPUNOV_MAX, layer, layers))
        line = (
            f"{name}: lambda max {values.max():+.4f}, mean {values.mean():+.4f}, "
            f"min {values.min():+.4f} (k = {len(values)} of {width})"
        )
        if recorded is not None:
            line += f"; the run recorded lambda max {recorded:+.4f}"
        click.echo(line)
        for start in range(0, len(values), PER_LINE):
            click.echo("  " + " ".join(f"{v:+.4f}" for v in values[start : start + PER_LINE]))
    return 0
