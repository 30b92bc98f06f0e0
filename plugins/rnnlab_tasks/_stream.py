"""Shared base of the tasks read from one long stream (a time series, a text): contiguous splits
in time order and windows that never cross a split boundary."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from rnnlab import base
from rnnlab.errors import DataError
from rnnlab_tasks._synthetic import SPLITS, check_batch_size, check_split, make_generator


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


class StreamDataset(base.Dataset):
    """Windows of ``window`` consecutive items of one stream, split in time order.

    A subclass calls :meth:`set_streams` in ``__init__`` with each split's part of the stream
    (a 1-D tensor) and implements :meth:`make_batch`, which turns windows ``[B, window]`` into
    ``(x, y)``. Train batches never end: window starts are drawn uniformly from the train block by
    a generator seeded from the run seed. Val and test iterate once, in time order, over the
    windows starting every ``eval_stride`` items. No window ever crosses a split boundary.
    """

    window: int = 2
    eval_stride: int = 1

    def __init__(self, params: base.Params | None = None, seed: int = 0) -> None:
        super().__init__(params, seed)
        if not isinstance(self.params, type(self).Params):
            raise TypeError(
                f"{type(self).__name__} needs {type(self).__qualname__}.Params, "
                f"got {type(self.params).__name__}"
            )
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
        for split in SPLITS:
            n = int(streams[split].shape[0])
            if n < self.window:
                raise DataError(
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

    def batches(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(x, y)`` batches: endless random windows for ``"train"``, else once in order.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.
            batch_size: Windows per batch.

        Raises:
            ValueError: Unknown split or a batch size below 1.
        """
        check_split(split)
        check_batch_size(batch_size)
        if split == "train":
            return self._train(batch_size)
        return self._once(split, batch_size)

    def _once(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        windows = self.windows(split, self.eval_stride)
        for start in range(0, windows.shape[0], batch_size):
            yield self.make_batch(windows[start : start + batch_size])

    def _train(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        windows = self.windows("train", 1)
        generator = make_generator(self.seed, "train")
        while True:
            starts = torch.randint(0, windows.shape[0], (batch_size,), generator=generator)
            yield self.make_batch(windows[starts])
