"""The classes every cell, dataset and remedy plugin subclasses, built-in or third-party.

``rnnlab`` re-exports each of them (``rnnlab.Cell``, ...): plugins import ``rnnlab`` alone.
Tensors are time-major throughout: a sequence batch is ``[T, B, features]``, as in ``nn.RNN``.
"""

from __future__ import annotations

from rnnlab.base._cell import (
    CAPABILITIES,
    Cell,
    CellWrapper,
    IdentityInit,
    Normalizable,
    Normalizer,
    NormalizerFactory,
    NormTerms,
    RecurrentInit,
    RecurrentInitializer,
    State,
    capability_problem,
)
from rnnlab.base._cellshape import CellShape
from rnnlab.base._dataset import Dataset, TaskKind
from rnnlab.base._params import Params
from rnnlab.base._remedy import LayerTrace, Remedy, remedy_problem
from rnnlab.base._taskshape import TaskShape
from rnnlab.base._template import SPLITS, SeededDataset, split_seed

__all__ = [
    "CAPABILITIES",
    "Cell",
    "CellShape",
    "CellWrapper",
    "Dataset",
    "IdentityInit",
    "LayerTrace",
    "Normalizable",
    "Normalizer",
    "NormalizerFactory",
    "NormTerms",
    "Params",
    "RecurrentInit",
    "RecurrentInitializer",
    "Remedy",
    "SPLITS",
    "SeededDataset",
    "State",
    "TaskKind",
    "TaskShape",
    "capability_problem",
    "remedy_problem",
    "split_seed",
]
