"""A shared base for image classification read as a sequence (pixel by pixel or row by row)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

import rnnlab

N_CLASSES = 10


class ImageParams(rnnlab.Params):
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


class ImageSequenceDataset(rnnlab.SeededDataset):
    """Images of ``side x side`` pixels, classified from the output at the last step.

    Subclasses set ``name``, ``side`` and ``scale`` and implement :meth:`load_split`. Train
    batches never end: indices are reshuffled every epoch by a generator seeded from the run seed
    (batches run across epoch boundaries, so every batch is full). Val and test iterate once, in
    order. Inputs are ``pixel * scale`` in float32. :class:`rnnlab.SeededDataset` checks the
    split and the batch size and seeds the generator.
    """

    Params: ClassVar[type[rnnlab.Params]] = ImageParams
    params: ImageParams
    kind = rnnlab.TaskKind.CLASSIFY_LAST
    name: ClassVar[str] = "images"
    side: ClassVar[int] = 8
    scale: ClassVar[float] = 1.0

    def __init__(self, params: rnnlab.Params | None = None, seed: int = 0) -> None:
        super().__init__(params, seed)
        p = self.params
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
        self.check_split(split)
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

    def held_out(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """``"val"`` or ``"test"`` once, in order: ``x`` ``[T, B, input_size]`` float32, ``y``
        ``[B]`` long."""
        images, labels = self.split_data(split)
        for start in range(0, labels.shape[0], batch_size):
            stop = start + batch_size
            yield self.to_sequence(images[start:stop]), labels[start:stop]

    def train_stream(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Endless batches, every epoch in an order drawn from ``generator``."""
        images, labels = self.split_data("train")
        n = labels.shape[0]
        pending = torch.empty(0, dtype=torch.long)
        while True:
            while pending.numel() < batch_size:
                pending = torch.cat([pending, torch.randperm(n, generator=generator)])
            idx, pending = pending[:batch_size], pending[batch_size:]
            yield self.to_sequence(images[idx]), labels[idx]

    def label(self) -> str:
        """``"<name> <mode>"``, with ``" perm"`` appended when permuted."""
        return f"{self.name} {self.mode}" + (" perm" if self.permute else "")
