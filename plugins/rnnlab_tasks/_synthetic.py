"""The base of the generated tasks: rnnlab's dataset template with the sizes of the fixed sets."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

import rnnlab


class SyntheticParams(rnnlab.Params):
    """Sizes of the fixed evaluation sets of a generated task."""

    val_size: int = Field(default=1000, gt=0, description="Sequences in the fixed val set.")
    test_size: int = Field(default=1000, gt=0, description="Sequences in the fixed test set.")


class SyntheticDataset(rnnlab.SeededDataset):
    """A task whose examples are generated from a seeded CPU generator.

    Subclasses implement :meth:`generate`; :class:`rnnlab.SeededDataset` does the rest. Train
    batches never end and are generated on the fly; val and test are generated once (on first
    use, then kept), each from its own seed derived from ``(seed, split)``, so they depend only
    on the run seed and the params.
    """

    Params: ClassVar[type[rnnlab.Params]] = SyntheticParams
