"""The temporal order problem (Hochreiter & Schmidhuber 1997, experiment 6a)."""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import Tensor

import rnnlab

SYMBOLS = "abcdXYBE"  # distractors a-d, the relevant X and Y, start B, end E


class TemporalOrder(rnnlab.SeededDataset):
    """Classify the order of two relevant symbols hidden among distractors.

    A sequence of ``T`` one-hot symbols (8 channels) starts with B and ends with E; every other
    step is a random distractor a, b, c or d, except one step drawn uniformly in
    ``[T/10, 2T/10)`` and one in ``[5T/10, 6T/10)``, which hold X or Y. The class, read at the last
    step, is the pair in order: XX, XY, YX or YY. Chance accuracy is 1/4 and the loss of always
    predicting the uniform distribution is ln 4 = 1.386 (the baseline). Positions relative to T
    follow Pascanu et al. 2013; Hochreiter & Schmidhuber used [10, 20] and [50, 60] at T ~ 100.

    rnnlab.SeededDataset makes the batches from :meth:`generate`: endless ones for ``"train"``,
    one pass over a fixed set of ``val_size`` (``test_size``) sequences for ``"val"``
    (``"test"``); each split draws from its own generator (:meth:`generator`).
    """

    class Params(rnnlab.Params):
        seq_len: int = Field(100, ge=10, description="Sequence length T (number of steps).")
        val_size: int = Field(512, gt=0, description="Sequences in the fixed val set.")
        test_size: int = Field(512, gt=0, description="Sequences in the fixed test set.")

    params: Params
    kind = rnnlab.TaskKind.CLASSIFY_LAST

    def __init__(self, params: rnnlab.Params | None = None, seed: int = 0) -> None:
        super().__init__(params, seed)
        self.seq_len = self.params.seq_len
        self.input_size = len(SYMBOLS)
        self.output_size = 4
        self.baseline_loss = math.log(4)

    def label(self) -> str:
        return f"temporal order T={self.seq_len}"

    def generate(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` sequences: ``x`` ``[T, n, 8]`` one-hot float32, ``y`` ``[n]`` class indices."""
        t = self.seq_len
        symbols = torch.randint(0, 4, (t, n), generator=generator)
        first = torch.randint(t // 10, max(2 * t // 10, t // 10 + 1), (n,), generator=generator)
        second = torch.randint(
            5 * t // 10, max(6 * t // 10, 5 * t // 10 + 1), (n,), generator=generator
        )
        which = torch.randint(0, 2, (2, n), generator=generator)  # 0 = X, 1 = Y
        cols = torch.arange(n)
        symbols[first, cols] = 4 + which[0]
        symbols[second, cols] = 4 + which[1]
        symbols[0], symbols[-1] = 6, 7
        x = torch.nn.functional.one_hot(symbols, len(SYMBOLS)).float()
        return x, 2 * which[0] + which[1]

    def generator(self, split: str) -> torch.Generator:
        """Split ``k`` (train 0, val 1, test 2) of seed ``s`` draws from ``3 s + k``."""
        return torch.Generator().manual_seed(
            self.seed * len(self.SPLITS) + self.SPLITS.index(split)
        )
