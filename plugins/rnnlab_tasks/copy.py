"""The copy memory task (Arjovsky et al. 2016)."""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import Tensor

import rnnlab
from rnnlab_tasks._synthetic import SyntheticDataset, SyntheticParams

N_DATA = 8
"""Data symbols are 0-7."""
BLANK = 8
DELIMITER = 9
N_SYMBOLS = 10
N_RECALL = 10
"""Number of data symbols to remember and recall."""


class CopyMemory(SyntheticDataset):
    """The copy memory task, as defined by Arjovsky et al. (2016).

    Symbols 0-7 are data, 8 is blank and 9 is the delimiter. With delay ``T`` (``Params.seq_len``)
    an input has ``T + 20`` steps: 10 random data symbols, ``T - 1`` blanks, the delimiter, then 10
    blanks. The target, at every step, is ``T + 10`` blanks followed by the 10 data symbols. Inputs
    are one-hot (10 channels); targets are class indices of shape ``[T + 20, B]``. The loss is
    cross-entropy averaged over every step.

    A memoryless predictor scores ``10 * ln(8) / (T + 20)`` (the baseline: 0.1733 at T=100).
    Accuracy is the fraction of the 10 recalled symbols (the last 10 steps) that are correct;
    chance is 1/8.

    Target (:meth:`target_steps`): the 10 recall steps, the only steps whose target depends on
    the input. Their share of the loss, the recall steps' cross-entropy summed over 10 steps and
    divided by ``T + 20``, is what the target curve ``grad/target/*`` measures.
    """

    class Params(SyntheticParams):
        """Parameters of the copy memory task."""

        seq_len: int = Field(
            default=100, ge=1, description="The delay T (sequences have T + 20 steps)."
        )

    params: Params
    kind = rnnlab.TaskKind.CLASSIFY_EVERY

    def __init__(self, params: CopyMemory.Params | None = None, seed: int = 0) -> None:
        """Create the task.

        Args:
            params: The task's parameters; defaults to ``CopyMemory.Params()``.
            seed: The run seed; train batches and the val/test sets derive from it.
        """
        super().__init__(params, seed)
        p = self.params
        self.delay = p.seq_len
        self.input_size = N_SYMBOLS
        self.output_size = N_SYMBOLS
        self.seq_len = self.delay + 2 * N_RECALL
        self.baseline_loss = N_RECALL * math.log(N_DATA) / self.seq_len

    def generate(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Generate ``n`` sequences: ``x`` ``[T+20, n, 10]`` float32, ``y`` ``[T+20, n]`` long."""
        data = torch.randint(0, N_DATA, (N_RECALL, n), generator=generator)
        symbols = torch.full((self.seq_len, n), BLANK, dtype=torch.long)
        symbols[:N_RECALL] = data
        symbols[N_RECALL + self.delay - 1] = DELIMITER
        y = torch.full((self.seq_len, n), BLANK, dtype=torch.long)
        y[-N_RECALL:] = data
        x = torch.nn.functional.one_hot(symbols, N_SYMBOLS).float()
        return x, y

    def target_steps(self) -> slice:
        """The 10 recall steps, the last 10: the steps that need the symbols seen T + 10 earlier."""
        return slice(-N_RECALL, None)

    def accuracy(self, out: Tensor, y: Tensor) -> Tensor:
        """The fraction of the recalled symbols (the last 10 steps) predicted correctly.

        Args:
            out: Logits ``[T+20, B, 10]``.
            y: Targets ``[T+20, B]``.
        """
        ok = out[-N_RECALL:].argmax(dim=-1) == y[-N_RECALL:]
        return ok.float().mean()

    def label(self) -> str:
        """``"copy T=<delay>"``."""
        return f"copy T={self.delay}"
