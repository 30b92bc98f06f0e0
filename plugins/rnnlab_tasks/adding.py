"""The adding problem (modern variant: Le et al. 2015, Arjovsky et al. 2016, Li et al. 2018)."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

import rnnlab
from rnnlab_tasks._synthetic import SyntheticDataset, SyntheticParams


class AddingProblem(SyntheticDataset):
    """The adding problem, modern variant (Le et al. 2015; Arjovsky et al. 2016; Li et al. 2018).

    Each input has ``T`` steps and 2 channels. Channel 0 holds values drawn from U[0, 1]; channel
    1 holds exactly two 1-markers, one at a uniform position in the first half ``[0, T//2)`` and
    one at a uniform position in the second half ``[T//2, T)``, and zeros elsewhere. The target
    is the sum of the two marked values, of shape ``[B, 1]``; the loss is the MSE at the last step.

    Always predicting 1 gives an MSE of 1/6 (the baseline; some papers misprint 0.1767).
    Accuracy is the fraction of sequences with ``|error| < 0.04`` (Hochreiter & Schmidhuber).
    This is not Pascanu et al.'s 2013 variant (markers in the first 10% and in [10%, 50%),
    target the mean).

    Target: the last step, where the whole loss is, so the target curve ``grad/target/*`` is the
    total curve ``grad/*``.
    """

    class Params(SyntheticParams):
        """Parameters of the adding problem."""

        seq_len: int = Field(default=100, ge=2, description="Sequence length T (number of steps).")

    params: Params
    kind = rnnlab.TaskKind.REGRESSION_LAST
    tolerance = 0.04

    def __init__(self, params: AddingProblem.Params | None = None, seed: int = 0) -> None:
        """Create the task.

        Args:
            params: The task's parameters; defaults to ``AddingProblem.Params()``.
            seed: The run seed; train batches and the val/test sets derive from it.
        """
        super().__init__(params, seed)
        p = self.params
        self.input_size = 2
        self.output_size = 1
        self.seq_len = p.seq_len
        self.baseline_loss = 1.0 / 6.0

    def generate(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Generate ``n`` sequences: ``x`` ``[T, n, 2]`` float32 and ``y`` ``[n, 1]`` float32."""
        t = self.seq_len
        half = t // 2
        values = torch.rand(t, n, generator=generator)
        first = torch.randint(0, half, (n,), generator=generator)
        second = torch.randint(half, t, (n,), generator=generator)
        cols = torch.arange(n)
        markers = torch.zeros(t, n)
        markers[first, cols] = 1.0
        markers[second, cols] = 1.0
        x = torch.stack([values, markers], dim=-1)
        y = (values[first, cols] + values[second, cols]).unsqueeze(1)
        return x, y

    def label(self) -> str:
        """``"adding T=<seq_len>"``."""
        return f"adding T={self.seq_len}"
