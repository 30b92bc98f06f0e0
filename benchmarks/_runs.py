"""Runs built and trained through rnnlab's public path: a config dict -> resolve -> train().

Per-step times come from ``train``'s own ``progress`` callback, which it calls after every step:
the gap between two calls is one whole training step as the trainer runs it (batch, forward, loss,
backward, gradient norms, remedies, optimizer, metrics). The gap that ends with the final step is
dropped because that step also evaluates; so is step 0, which has no gap before it. On CUDA the
callback waits for the GPU (``torch.cuda.synchronize``) before it reads the clock, so that a step's
kernels count in its own gap, not in the next one's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnnlab.plugins import Registry
    from rnnlab.run import ResolvedRun, RunResult, Tracker


@cache
def registry() -> Registry:
    """Every installed plugin, discovered through the entry points (as ``rnnlab run`` does)."""
    from rnnlab.plugins import make_plugin_manager

    return make_plugin_manager(strict=False, trace=False).registry()


def config(
    cell: str,
    seq_len: int,
    *,
    hidden: int = 128,
    batch: int = 64,
    steps: int = 10,
    probe_every: int = 0,
    remedies: Sequence[str] = (),
    eval_every: int | None = None,
    log_every: int = 10,
    val_size: int = 64,
    threads: int | None = 1,
    seed: int = 0,
    device: str = "cpu",
    **train: Any,
) -> dict[str, Any]:
    """A run config (as a YAML file would hold it) on the adding problem, on ``device``.

    By default it evaluates only at the start and the end (``eval_every = steps``) and on a small
    validation set, so that the steps in between are pure training steps.
    """
    return {
        "name": "bench",
        "seed": seed,
        "dataset": {"name": "adding", "seq_len": seq_len, "val_size": val_size},
        "cell": {"name": cell, "hidden_size": hidden},
        "remedies": list(remedies),
        "train": {
            "steps": steps,
            "batch_size": batch,
            "optimizer": "adam",
            "lr": 1e-3,
            "eval_every": eval_every or steps,
            "probe_every": probe_every,
            "log_every": log_every,
            "device": device,
            "threads": threads,
            **train,
        },
    }


def resolve(data: dict[str, Any]) -> ResolvedRun:
    """Validate a config dict against the installed plugins (``rnnlab.run.resolve``)."""
    from rnnlab.run import Source
    from rnnlab.run import resolve as resolve_source

    return resolve_source(Source(None, data), registry())


def train_timed(run: ResolvedRun, tracker: Tracker | None = None) -> tuple[RunResult, list[float]]:
    """Train ``run`` and return its result and the seconds of steps 1 .. N-2 (see module doc)."""
    from benchmarks._timing import synchronizer
    from rnnlab.run import NullTracker, train

    stamps: list[float] = []
    sync = synchronizer(run.config.train.device)

    def progress(_: object) -> None:
        sync()  # CUDA: this step's kernels are done before its end is stamped
        stamps.append(time.perf_counter())

    result = train(run, tracker or NullTracker(keep_artifacts=False), progress=progress)
    if result.outcome != "completed":
        raise RuntimeError(f"benchmark run ended {result.outcome}: {result.message}")
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return result, gaps[:-1]


def step_times(data: dict[str, Any]) -> list[float]:
    """Seconds of each pure training step of the config ``data`` (steps 1 .. N-2)."""
    return train_timed(resolve(data))[1]


def torch_twin(model: Any, input_size: int) -> tuple[Any, Any]:
    """A bare copy of a one-layer built-in model: its ``nn.RNN/LSTM/GRU`` and its head.

    Args:
        model: a ``SequenceModel`` whose cell is a built-in twin cell (``cell.rnn``).
        input_size: the dataset's input width.

    Returns:
        ``(module, head)``: new torch modules holding copies of the model's weights.
    """
    import torch
    from torch import nn

    fused = getattr(model.cells[0], "rnn", None)
    if not isinstance(fused, nn.RNNBase):
        raise TypeError(f"expected a built-in rnn/lstm/gru cell, got {type(model.cells[0])}")
    kwargs = {"nonlinearity": fused.nonlinearity} if isinstance(fused, nn.RNN) else {}
    twin: Any = type(fused)  # nn.RNN / nn.LSTM / nn.GRU, whose first argument is input_size
    module = twin(input_size, fused.hidden_size, **kwargs)
    module.load_state_dict(fused.state_dict())
    head = nn.Linear(model.head.in_features, model.head.out_features)
    head.load_state_dict(model.head.state_dict())
    device: torch.device = next(model.parameters()).device
    return module.to(device), head.to(device)
