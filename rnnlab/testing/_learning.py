"""The learning check the suites share: a tiny task that any working cell and remedy learns.

A run that trains must learn: with ``optimizer.step()`` gone, or a remedy that zeroes every
gradient, all else still passes. The task is the suite's own, so that the check does not hang on
a plugin task's difficulty: its step-0 loss is far above what a few updates reach, whatever the
initial weights (the adding problem's can start within 30% of its floor).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from pydantic import Field
from torch import Tensor

import rnnlab
from rnnlab._names import COMPLETED, VAL_LOSS
from rnnlab.base import Dataset, TaskKind
from rnnlab.plugins import Registry

LEARNABLE = "rnnlab-learnable"
LEARN_TRAIN: Mapping[str, Any] = {
    "steps": 30,
    "batch_size": 8,
    "probe_every": 10,
    "eval_every": 30,
    "log_every": 10,
    "lr": 0.03,
    "device": "cpu",
    "flush_denormal": False,
    "plots": False,
}
LEARNED = 0.5
"""The final val loss must be below this fraction of the step-0 val loss. Measured on the 24
cell and remedy configurations of tests/test_contracts.py x seeds 0-7: final/step-0 ratios
0.003-0.20 (median ~0.04); without optimizer steps 0.97-1.03 (batch-norm's running statistics
still move), so the check is neither flaky nor passable without training."""


class Learnable(Dataset):
    """y = 2 + x_T[0]: the last step's first input channel, offset by 2 (regression).

    Its step-0 MSE is about (2 - output)^2 + 1/4 with the head's small initial outputs, and
    learning the offset alone takes it below a tenth of that.
    """

    class Params(rnnlab.Params):
        seq_len: int = Field(5, ge=1)
        val_size: int = Field(64, gt=0)

    params: Params
    kind = TaskKind.REGRESSION_LAST

    def __init__(self, params: rnnlab.Params | None = None, seed: int = 0) -> None:
        super().__init__(params, seed)
        self.input_size, self.output_size = 2, 1
        self.seq_len = int(self.params.seq_len)

    def _draw(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x = 0.5 * torch.randn(self.seq_len, n, self.input_size, generator=generator)
        return x, 2.0 + x[-1, :, :1]

    def batches(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        if split == "train":
            generator = torch.Generator().manual_seed(self.seed)
            while True:
                yield self._draw(batch_size, generator)
        size = int(self.params.val_size)
        stream = {"val": 1, "test": 2}[split]
        x, y = self._draw(size, torch.Generator().manual_seed(1_000_003 * stream + self.seed))
        for start in range(0, size, batch_size):
            yield x[:, start : start + batch_size], y[start : start + batch_size]


def learning_run(
    registry: Registry,
    cell: Mapping[str, Any],
    remedies: Iterable[Mapping[str, Any]] = (),
    seed: int = 0,
) -> tuple[float, float]:
    """Train ``cell`` (with ``remedies``) on :class:`Learnable`, registered as ``LEARNABLE`` in
    ``registry``; fail unless the final val loss is below ``LEARNED`` x the step-0 one.

    Returns:
        The step-0 and the final val loss.
    """
    from rnnlab.run import NullTracker, Source, resolve, train

    data = {
        "name": "contract-learning",
        "seed": seed,
        "dataset": {"name": LEARNABLE},
        "cell": dict(cell),
        "remedies": [dict(r) for r in remedies],
        "train": dict(LEARN_TRAIN),
    }
    tracker = NullTracker(keep_artifacts=False)
    result = train(resolve(Source(path=None, data=data), registry), tracker)
    assert result.outcome == COMPLETED, result.message
    history = tracker.history[VAL_LOSS]
    first, last = history[0][1], history[-1][1]
    assert history[0][0] == 0 and math.isfinite(first) and math.isfinite(last), history
    assert last < LEARNED * first, (
        f"did not learn: val/loss {first:.4g} at step 0, {last:.4g} after "
        f"{LEARN_TRAIN['steps']} steps (must fall below {LEARNED:g}x); are the optimizer "
        "steps taken and do the gradients survive every remedy?"
    )
    return first, last
