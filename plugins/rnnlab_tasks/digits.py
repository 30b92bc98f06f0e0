"""Sequential digits: scikit-learn's 8x8 digit images read pixel by pixel or row by row."""

from __future__ import annotations

import functools

import torch
from pydantic import Field, model_validator
from torch import Tensor

from rnnlab_tasks._images import ImageParams, ImageSequenceDataset

SPLIT_SEED = 0
"""Seed of the fixed shuffle that splits the 1797 images into train, val and test."""


@functools.cache
def _load_digits() -> tuple[Tensor, Tensor]:
    """All 1797 images ``[1797, 8, 8]`` uint8 (values 0-16) and labels ``[1797]`` long."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images).to(torch.uint8)
    labels = torch.as_tensor(bunch.target).to(torch.long)
    return images, labels


class SequentialDigits(ImageSequenceDataset):
    """Sequential digits: a small, offline stand-in for sequential (and permuted) MNIST.

    The 1797 8x8 images of scikit-learn's ``load_digits()`` (10 classes), pixel values divided by
    16 so inputs lie in [0, 1]. In ``"pixel"`` mode a sequence has 64 steps of one pixel (row-major
    order); in ``"row"`` mode it has 8 steps of one 8-pixel row. With ``permute`` the time steps
    are reordered by a fixed random permutation drawn from ``permutation_seed`` (the same for every
    run seed), as in permuted MNIST. The class is predicted from the output at the last step.
    Target: that last step, the whole loss, so the target curve ``grad/target/*`` is the total
    curve ``grad/*``.

    The split is fixed: one shuffle with seed 0, the first ``val_fraction`` of it for val, the next
    ``test_fraction`` for test, the rest for train (270 / 270 / 1257 by default). Train batches are
    reshuffled every epoch by a generator seeded from the run seed; val and test iterate once.
    """

    class Params(ImageParams):
        """Parameters of sequential digits."""

        val_fraction: float = Field(
            default=0.15, gt=0, lt=1, description="Fraction of the 1797 images held out for val."
        )
        test_fraction: float = Field(
            default=0.15, gt=0, lt=1, description="Fraction of the 1797 images held out for test."
        )

        @model_validator(mode="after")
        def _leave_training_data(self) -> SequentialDigits.Params:
            if self.val_fraction + self.test_fraction >= 0.9:
                raise ValueError("val_fraction + test_fraction must be below 0.9")
            return self

    params: Params
    name = "digits"
    side = 8
    scale = 1.0 / 16.0

    def __init__(self, params: SequentialDigits.Params | None = None, seed: int = 0) -> None:
        """Create the task (the images are loaded on first use).

        Args:
            params: The task's parameters; defaults to ``SequentialDigits.Params()``.
            seed: The run seed; it orders the train batches only (the split is fixed).
        """
        super().__init__(params, seed)

    def split_indices(self, split: str) -> Tensor:
        """Indices into ``load_digits()`` of ``split`` under the fixed shuffle (seed 0).

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.

        Raises:
            ValueError: Unknown split.
        """
        self.check_split(split)
        p = self.params
        n = _load_digits()[1].shape[0]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
        n_val = round(n * p.val_fraction)
        n_test = round(n * p.test_fraction)
        parts = {
            "val": order[:n_val],
            "test": order[n_val : n_val + n_test],
            "train": order[n_val + n_test :],
        }
        return parts[split]

    def load_split(self, split: str) -> tuple[Tensor, Tensor]:
        """The images and labels of ``split`` under the fixed shuffle."""
        images, labels = _load_digits()
        idx = self.split_indices(split)
        return images[idx], labels[idx]
