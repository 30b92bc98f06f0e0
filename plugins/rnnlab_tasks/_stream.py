"""Shared base of the tasks read from one long stream (a time series, a text): contiguous splits
in time order and windows that never cross a split boundary."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

import rnnlab


def time_split(n: int, val_fraction: float, test_fraction: float) -> dict[str, tuple[int, int]]:
    """Contiguous ``[start, stop)`` bounds of train, val and test, in that order along time.

    Args:
        n: Length of the stream.
        val_fraction: Fraction of the stream in the val block (rounded down, at least 1).
        test_fraction: Fraction of the stream in the test block (rounded down, at least 1).

    Returns:
        ``{"train": (0, a), "val": (a, b), "test": (b, n)}``: train is the beginning of the stream,
        test its end, so nothing later in time is ever trained on.

    Example:
        >>> time_split(100, 0.1, 0.2)
        {'train': (0, 70), 'val': (70, 80), 'test': (80, 100)}
    """
    n_test = max(1, math.floor(n * test_fraction))
    n_val = max(1, math.floor(n * val_fraction))
    a = n - n_val - n_test
    return {"train": (0, a), "val": (a, a + n_val), "test": (a + n_val, n)}


class StreamDataset(rnnlab.SeededDataset):
    """Windows of ``window`` consecutive items of one stream, split in time order.

    A subclass calls :meth:`set_streams` in ``__init__`` with each split's part of the stream
    (a 1-D tensor) and implements :meth:`make_batch`, which turns windows ``[B, window]`` into
    ``(x, y)``. Train batches never end: window starts are drawn uniformly from the train block by
    a generator seeded from the run seed. Val and test iterate once, in time order, over the
    windows starting every ``eval_stride`` items. No window ever crosses a split boundary.
    :class:`rnnlab.SeededDataset` checks the split and the batch size and seeds the generator.
    """

    window: int = 2
    eval_stride: int = 1

    def __init__(self, params: rnnlab.Params | None = None, seed: int = 0) -> None:
        super().__init__(params, seed)
        self.streams: dict[str, Tensor] = {}

    def set_streams(self, streams: dict[str, Tensor], source: str, fix: str) -> None:
        """Keep each split's stream; raise if one is too short for a single window.

        Args:
            streams: ``{"train": ..., "val": ..., "test": ...}``, 1-D tensors.
            source: What the stream is, for the error message (e.g. a file name).
            fix: How to make the splits longer, for the error message.

        Raises:
            DataError: A split holds fewer than ``window`` items.
        """
        for split in rnnlab.SeededDataset.SPLITS:
            n = int(streams[split].shape[0])
            if n < self.window:
                raise rnnlab.DataError(
                    f"{source}: the {split} split has {n} items, fewer than one window of "
                    f"{self.window} (seq_len plus the targets after it); {fix}"
                )
        self.streams = streams

    def windows(self, split: str, stride: int) -> Tensor:
        """Every window of ``split`` starting ``stride`` items apart, ``[N, window]`` (a view)."""
        return self.streams[split].unfold(0, self.window, stride)

    def make_batch(self, windows: Tensor) -> tuple[Tensor, Tensor]:
        """Turn windows ``[B, window]`` into a batch ``(x, y)``."""
        raise NotImplementedError

    def held_out(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """``"val"`` or ``"test"`` once, in time order."""
        windows = self.windows(split, self.eval_stride)
        for start in range(0, windows.shape[0], batch_size):
            yield self.make_batch(windows[start : start + batch_size])

    def train_stream(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Endless batches of windows whose starts ``generator`` draws from the train block."""
        windows = self.windows("train", 1)
        while True:
            starts = torch.randint(0, windows.shape[0], (batch_size,), generator=generator)
            yield self.make_batch(windows[starts])
