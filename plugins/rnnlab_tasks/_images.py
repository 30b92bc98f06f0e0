"""A shared base for image classification read as a sequence (pixel by pixel or row by row)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from rnnlab import base
from rnnlab_tasks._synthetic import check_batch_size, check_split, make_generator

N_CLASSES = 10


class ImageParams(base.Params):
    """How an image becomes a sequence."""

    mode: Literal["pixel", "row"] = Field(
        default="pixel", description="'pixel': one pixel per step; 'row': one image row per step."
    )
    permute: bool = Field(
        default=False, description="Reorder the time steps by a fixed random permutation."
    )
    permutation_seed: int = Field(
        default=0, ge=0, description="Seed of the permutation; the same for every run seed."
    )


class ImageSequenceDataset(base.Dataset):
    """Images of ``side x side`` pixels, classified from the output at the last step.

    Subclasses set ``name``, ``side`` and ``scale`` and implement :meth:`load_split`. Train
    batches never end: indices are reshuffled every epoch by a generator seeded from the run seed
    (batches run across epoch boundaries, so every batch is full). Val and test iterate once, in
    order. Inputs are ``pixel * scale`` in float32.
    """

    Params: ClassVar[type[base.Params]] = ImageParams
    kind = base.TaskKind.CLASSIFY_LAST
    name: ClassVar[str] = "images"
    side: ClassVar[int] = 8
    scale: ClassVar[float] = 1.0

    def __init__(self, params: base.Params | None = None, seed: int = 0) -> None:
        super().__init__(params, seed)
        if not isinstance(self.params, type(self).Params):
            raise TypeError(
                f"{type(self).__name__} needs {type(self).__qualname__}.Params, "
                f"got {type(self.params).__name__}"
            )
        p = self.params
        assert isinstance(p, ImageParams)
        self.mode = p.mode
        self.permute = p.permute
        self.output_size = N_CLASSES
        if p.mode == "pixel":
            self.seq_len, self.input_size = self.side * self.side, 1
        else:
            self.seq_len, self.input_size = self.side, self.side
        self.permutation: Tensor | None = None
        if p.permute:
            perm_gen = torch.Generator().manual_seed(p.permutation_seed)
            self.permutation = torch.randperm(self.seq_len, generator=perm_gen)
        self._splits: dict[str, tuple[Tensor, Tensor]] = {}

    def load_split(self, split: str) -> tuple[Tensor, Tensor]:
        """Images ``[N, side, side]`` (any numeric dtype) and labels ``[N]`` long of a split."""
        raise NotImplementedError

    def split_data(self, split: str) -> tuple[Tensor, Tensor]:
        """A split's raw images and labels, loaded on first use and then cached."""
        check_split(split)
        if split not in self._splits:
            self._splits[split] = self.load_split(split)
        return self._splits[split]

    def to_sequence(self, images: Tensor) -> Tensor:
        """Turn images ``[B, side, side]`` into time-major float32 inputs ``[T, B, input_size]``."""
        x = images.to(torch.float32) * self.scale
        x = x.reshape(x.shape[0], self.seq_len, self.input_size)
        if self.permutation is not None:
            x = x[:, self.permutation]
        return x.transpose(0, 1).contiguous()

    def batches(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(x, y)``: ``x`` ``[T, B, input_size]`` float32, ``y`` ``[B]`` long.

        Args:
            split: ``"train"`` (endless), ``"val"`` or ``"test"`` (once, in order).
            batch_size: Images per batch.

        Raises:
            ValueError: Unknown split or a batch size below 1.
        """
        check_split(split)
        check_batch_size(batch_size)
        if split == "train":
            return self._train(batch_size)
        return self._once(split, batch_size)

    def _once(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        images, labels = self.split_data(split)
        for start in range(0, labels.shape[0], batch_size):
            stop = start + batch_size
            yield self.to_sequence(images[start:stop]), labels[start:stop]

    def _train(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        images, labels = self.split_data("train")
        n = labels.shape[0]
        generator = make_generator(self.seed, "train")
        pending = torch.empty(0, dtype=torch.long)
        while True:
            while pending.numel() < batch_size:
                pending = torch.cat([pending, torch.randperm(n, generator=generator)])
            idx, pending = pending[:batch_size], pending[batch_size:]
            yield self.to_sequence(images[idx]), labels[idx]

    def label(self) -> str:
        """``"<name> <mode>"``, with ``" perm"`` appended when permuted."""
        return f"{self.name} {self.mode}" + (" perm" if self.permute else "")
