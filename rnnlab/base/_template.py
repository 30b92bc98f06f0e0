"""An opt-in template for datasets: split checks, a seeded generator per split, the endless train
stream and one pass over a fixed held-out set (what the built-in tasks share)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import ClassVar

import torch
from torch import Tensor

from rnnlab.base._dataset import Dataset, TaskKind
from rnnlab.base._params import Params

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""The splits every dataset serves: ``train`` never ends; ``val`` and ``test`` are fixed sets."""


def split_seed(seed: int, split: str) -> int:
    """A generator seed from a run seed and a split name, the same in every process (a
    non-negative 63-bit integer): train, val and test draw from streams of their own."""
    digest = hashlib.sha256(f"rnnlab:{seed}:{split}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def check_split(split: str) -> None:
    """A ``ValueError`` naming the allowed splits unless ``split`` is one of :data:`SPLITS`."""
    if split not in SPLITS:
        allowed = ", ".join(repr(s) for s in SPLITS)
        raise ValueError(f"unknown split {split!r}; expected one of {allowed}")


def check_batch_size(batch_size: int) -> None:
    """A ``ValueError`` unless ``batch_size`` is at least 1."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def slice_batches(
    x: Tensor, y: Tensor, batch_size: int, y_dim: int = 0
) -> Iterator[tuple[Tensor, Tensor]]:
    """Once, in order, over a fixed set ``x`` ``[T, N, F]``, ``y`` with its ``N`` examples along
    ``y_dim`` (1 for per-step targets ``[T, N]``); the last batch may be smaller."""
    n = x.shape[1]
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        yield x.narrow(1, start, size), y.narrow(y_dim, start, size)


class SeededDataset(Dataset):
    """A :class:`Dataset` with the parts every task needs written once (opt-in: subclass it, or
    :class:`Dataset` directly).

    ``batches(split, batch_size)`` checks both arguments (a ``ValueError`` naming what is
    allowed), then returns ``train_stream(batch_size, generator("train"))`` for ``"train"`` and
    ``held_out(split, batch_size)`` otherwise. By default:

    * ``generator(split)`` is a CPU ``torch.Generator`` seeded from ``(seed, split)``
      (:func:`split_seed`), so the data depend on the run seed and the params alone;
    * ``train_stream`` yields ``generate(batch_size, generator)`` for ever;
    * ``held_out`` iterates once over ``fixed_set(split)``: ``generate(n, generator(split))``,
      made on first use and kept, ``n`` the params' ``val_size`` or ``test_size``.

    So a generated task implements ``generate(n, generator) -> (x, y)`` and nothing else; a task
    that reads data overrides ``train_stream`` and ``held_out`` instead. The params must be an
    instance of the class's own ``Params`` (a ``TypeError`` says so otherwise).

    Example:
        >>> class Noise(rnnlab.SeededDataset):
        ...     class Params(rnnlab.Params):
        ...         val_size: int = 64
        ...         test_size: int = 64
        ...     kind = rnnlab.TaskKind.REGRESSION_LAST
        ...     input_size, output_size, seq_len = 1, 1, 10
        ...     def generate(self, n, generator):
        ...         x = torch.randn(self.seq_len, n, 1, generator=generator)
        ...         return x, x[0]
    """

    def __init__(self, params: Params | None = None, seed: int = 0) -> None:
        super().__init__(params, seed)
        if not isinstance(self.params, type(self).Params):
            raise TypeError(
                f"{type(self).__name__} needs {type(self).__qualname__}.Params, "
                f"got {type(self.params).__name__}"
            )
        self._fixed: dict[str, tuple[Tensor, Tensor]] = {}

    SPLITS: ClassVar[tuple[str, ...]] = SPLITS
    check_split = staticmethod(check_split)
    check_batch_size = staticmethod(check_batch_size)

    def batches(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """``(x, y)`` batches: endless for ``"train"``, once over the fixed set otherwise."""
        check_split(split)
        check_batch_size(batch_size)
        if split == "train":
            return self.train_stream(batch_size, self.generator("train"))
        return self.held_out(split, batch_size)

    def generator(self, split: str) -> torch.Generator:
        """The random stream of ``split``: a CPU generator seeded by :func:`split_seed`."""
        return torch.Generator().manual_seed(split_seed(self.seed, split))

    def generate(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` examples ``(x, y)`` drawn with ``generator``, ``x`` ``[T, n, input_size]``."""
        raise NotImplementedError(
            f"{type(self).__name__} implements neither generate() nor train_stream/held_out"
        )

    def train_stream(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The endless train batches: ``generate(batch_size, generator)`` again and again."""
        while True:
            yield self.generate(batch_size, generator)

    def held_out_size(self, split: str) -> int:
        """How many examples ``split`` holds: the params' ``val_size`` or ``test_size``."""
        return int(getattr(self.params, f"{split}_size"))

    def fixed_set(self, split: str) -> tuple[Tensor, Tensor]:
        """The whole ``"val"`` or ``"test"`` set, generated on first use and then kept."""
        check_split(split)
        if split == "train":
            raise ValueError("the 'train' split is endless and has no fixed set")
        if split not in self._fixed:
            self._fixed[split] = self.generate(self.held_out_size(split), self.generator(split))
        return self._fixed[split]

    def held_out(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Once, in order, over ``fixed_set(split)``."""
        x, y = self.fixed_set(split)
        y_dim = 1 if self.kind is TaskKind.CLASSIFY_EVERY else 0
        return slice_batches(x, y, batch_size, y_dim)
