"""Shared helpers: split names, per-split seeds, batch slicing and a base for generated tasks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor

from rnnlab import base

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""The split names every built-in dataset accepts."""


def check_split(split: str) -> None:
    """Raise if ``split`` is not one of :data:`SPLITS`.

    Args:
        split: The requested split name.

    Raises:
        ValueError: The split is unknown; the message names the allowed ones.
    """
    if split not in SPLITS:
        allowed = ", ".join(repr(s) for s in SPLITS)
        raise ValueError(f"unknown split {split!r}; expected one of {allowed}")


def check_batch_size(batch_size: int) -> None:
    """Raise ``ValueError`` unless ``batch_size`` is at least 1."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def split_seed(seed: int, split: str) -> int:
    """A generator seed derived from a run seed and a split name, stable across processes.

    Args:
        seed: The run seed.
        split: The split name, so that train, val and test draw from different streams.

    Returns:
        A non-negative 63-bit integer.
    """
    digest = hashlib.sha256(f"rnnlab:{seed}:{split}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def make_generator(seed: int, split: str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`split_seed` of ``(seed, split)``."""
    return torch.Generator().manual_seed(split_seed(seed, split))


def slice_batches(
    x: Tensor, y: Tensor, batch_size: int, y_dim: int = 0
) -> Iterator[tuple[Tensor, Tensor]]:
    """Iterate once, in order, over a fixed set; the last batch may be smaller.

    Args:
        x: Time-major inputs ``[T, N, F]``.
        y: Targets with the ``N`` examples along ``y_dim``.
        batch_size: Examples per batch.
        y_dim: The example dimension of ``y`` (1 for per-step targets ``[T, N]``).
    """
    n = x.shape[1]
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        yield x.narrow(1, start, size), y.narrow(y_dim, start, size)


class SyntheticParams(base.Params):
    """Sizes of the fixed evaluation sets of a generated task."""

    val_size: int = Field(default=1000, gt=0, description="Sequences in the fixed val set.")
    test_size: int = Field(default=1000, gt=0, description="Sequences in the fixed test set.")


class SyntheticDataset(base.Dataset):
    """A task whose examples are generated from a seeded CPU generator.

    Subclasses implement :meth:`generate`. Train batches never end and are generated on the fly;
    val and test are generated once (on first use, then cached), each from its own seed derived
    from ``(seed, split)``, so they depend only on the run seed and the params.
    """

    Params: ClassVar[type[base.Params]] = SyntheticParams

    def __init__(self, params: base.Params | None = None, seed: int = 0) -> None:
        super().__init__(params, seed)
        if not isinstance(self.params, type(self).Params):
            raise TypeError(
                f"{type(self).__name__} needs {type(self).__qualname__}.Params, "
                f"got {type(self.params).__name__}"
            )
        self._fixed: dict[str, tuple[Tensor, Tensor]] = {}

    def generate(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Generate ``n`` examples ``(x, y)``, ``x`` time-major ``[T, n, input_size]``."""
        raise NotImplementedError

    def fixed_set(self, split: str) -> tuple[Tensor, Tensor]:
        """The whole ``"val"`` or ``"test"`` set, generated on first use and then cached."""
        check_split(split)
        if split == "train":
            raise ValueError("the 'train' split is endless and has no fixed set")
        if split not in self._fixed:
            params = self.params
            assert isinstance(params, SyntheticParams)
            size = params.val_size if split == "val" else params.test_size
            self._fixed[split] = self.generate(size, make_generator(self.seed, split))
        return self._fixed[split]

    def batches(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(x, y)`` batches: endless for ``"train"``, once over the set otherwise.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.
            batch_size: Sequences per batch.

        Raises:
            ValueError: Unknown split or a batch size below 1.
        """
        check_split(split)
        check_batch_size(batch_size)
        if split == "train":
            return self._train(batch_size)
        x, y = self.fixed_set(split)
        y_dim = 1 if self.kind is base.TaskKind.CLASSIFY_EVERY else 0
        return slice_batches(x, y, batch_size, y_dim)

    def _train(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        generator = make_generator(self.seed, "train")
        while True:
            yield self.generate(batch_size, generator)
