"""Helpers the contract suites share: registering a class for one test, a tiny real run."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import Tensor

from rnnlab._names import COMPLETED, FLOW_FILE, LOG10_RATIO, VAL_LOSS
from rnnlab.base import LayerTrace, Params
from rnnlab.plugins import Registry
from rnnlab.run import NullTracker

if TYPE_CHECKING:
    from rnnlab.run import RunResult, SequenceModel

TINY_TRAIN: Mapping[str, Any] = {
    "steps": 4,
    "batch_size": 8,
    "probe_every": 2,
    "eval_every": 2,
    "log_every": 1,
    "lr": 0.01,
    "device": "cpu",
    "flush_denormal": False,  # no process-wide change in tests
}
TINY_ADDING: Mapping[str, Any] = {"seq_len": 10, "val_size": 32, "test_size": 32}


class _FlowTracker(NullTracker):
    """A null tracker that keeps the run's gradient-flow array (``norms [P, layers, T]`` of
    gradient_flow.npz) in ``flow``."""

    def __init__(self) -> None:
        super().__init__(keep_artifacts=True)
        self.flow: np.ndarray | None = None

    def log_artifacts(self, folder: Path) -> None:
        super().log_artifacts(folder)
        with np.load(folder / FLOW_FILE) as saved:
            self.flow = saved["norms"]


def short_run(
    registry: Registry,
    dataset: Mapping[str, Any],
    cell: Mapping[str, Any],
    remedies: Iterable[Mapping[str, Any]] = (),
) -> tuple[RunResult, NullTracker]:
    """Train a tiny config a few steps; check it completed and measured the gradient flow: at
    step 0 every layer's curve is live (||dL/dh_T|| > 0, so not all of it underflowed) and its
    summaries are finite. All of it is the real path but the figures (most of a tiny run's time).
    """
    from rnnlab.run import Source, resolve, train

    data = {
        "name": "contract",
        "seed": 0,
        "dataset": dict(dataset),
        "cell": dict(cell),
        "remedies": [dict(r) for r in remedies],
        "train": {**TINY_TRAIN, "plots": False},
    }
    tracker = _FlowTracker()
    result = train(resolve(Source(path=None, data=data), registry), tracker)
    assert result.outcome == COMPLETED, result.message
    assert math.isfinite(result.metrics[VAL_LOSS])
    ratios = tracker.history.get(LOG10_RATIO, [])
    assert ratios and all(math.isfinite(v) for _, v in ratios), ratios
    flow = tracker.flow
    assert flow is not None and flow.ndim == 3 and flow.shape[0] > 0, "no gradient-flow curve"
    for layer, curve in enumerate(flow[0]):
        assert curve[-1] > 0 and np.isfinite(curve).all(), (
            f"layer {layer}: the step-0 curve ||dL/dh_t|| is {curve.tolist()}: ||dL/dh_T|| must "
            "be > 0 (is each probe added to the h_t that the next step and the head use?)"
        )
    return result, tracker


def probes_match_autograd(model: SequenceModel, x: Tensor, tol: float) -> None:
    """Each probe's gradient on a probed pass is dL/dh_t: autograd's on an unprobed pass that
    keeps every h_t (``traces``), whatever the cells do with their state."""
    traces: list[LayerTrace] = []
    out, _ = model(x, traces=traces)
    gen = torch.Generator().manual_seed(4)
    readout = torch.randn(out.shape, generator=gen).to(out.dtype)  # a loss that uses every output
    hidden = [h for trace in traces for h in trace.hidden]
    grads = torch.autograd.grad((out * readout).sum(), hidden, allow_unused=True)
    probed, probes = model(x, probe=True)
    close(probed, out, tol, "outputs of the probed pass")
    (probed * readout).sum().backward()
    assert len(probes) == len(traces), f"{len(probes)} probes for {len(traces)} layers"
    steps = x.shape[0]
    for layer, z in enumerate(probes):
        assert z.grad is not None, f"layer {layer}: the probe never reached the loss"
        expected = [
            g if g is not None else torch.zeros_like(h)
            for g, h in zip(
                grads[layer * steps : (layer + 1) * steps],
                hidden[layer * steps : (layer + 1) * steps],
                strict=True,
            )
        ]
        close(z.grad, torch.stack(expected), tol, f"layer {layer}: probe gradient vs dL/dh_t")


def missing_gradients(module: torch.nn.Module, unused: Iterable[str] = ()) -> list[str]:
    """Names of ``module``'s parameters that backward left without a non-zero gradient."""
    skip = set(unused)
    return [
        name
        for name, p in module.named_parameters()
        if name not in skip and (p.grad is None or not bool(p.grad.any()))
    ]


def options(params: Params | None, cls: Any) -> dict[str, Any]:
    return dict((params if params is not None else cls.Params()).model_dump())


def close(a: Tensor, b: Tensor, tol: float, what: str) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=lambda m: f"{what}: {m}")


def unknown_key_rejected(cls: Any) -> None:
    cls.Params()  # the defaults are valid
    with pytest.raises(ValidationError):
        cls.Params.model_validate({"no_such_option": 1})


class Contract:
    params: ClassVar[Params | None] = None  # None: the class's default Params
    input_size: ClassVar[int] = 3  # sizes of the cells and batches the tests build
    hidden_size: ClassVar[int] = 5
    steps: ClassVar[int] = 6
    batch: ClassVar[int] = 4
    dataset_name: ClassVar[str] = "adding"  # the task of the training run (cells, remedies)
    dataset_options: ClassVar[Mapping[str, Any]] = TINY_ADDING
    unused_parameters: ClassVar[frozenset[str]] = frozenset()
    """Parameter names (as ``named_parameters`` gives them) that the recurrence never uses, so
    that backward leaves them without a gradient on purpose (SimpleRNN's tutorial-only ``i2o``);
    every other parameter must get a non-zero one."""

    @pytest.fixture(autouse=True)
    def _one_torch_thread(self) -> Iterator[None]:
        # fastest for tiny tensors; idle threads spinning on a busy 2-core machine made these
        # suites four times slower
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(threads)
