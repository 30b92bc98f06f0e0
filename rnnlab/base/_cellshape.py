"""A run's cell as remedies see it while the config is resolved: its options, and throwaway
instances that leave torch's random stream alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from rnnlab.base._cell import Cell
    from rnnlab.base._params import Params
    from rnnlab.base._taskshape import TaskShape

BUILD_SEED = 0
"""The seed of every :meth:`CellShape.build` instance: a check that reads weights answers the same
in the sweep's coordinator and in its worker."""


class CellShape:
    """The cell of a config being resolved, as :meth:`Remedy.check` sees it (its ``cell``).

    ``name`` is the registered name, ``cls`` the class, ``params`` the validated options with the
    task's values filled in (:meth:`Cell.resolve_params` applied: what the run will build),
    ``hidden_size`` the config's. :meth:`build` makes a throwaway instance to look at (its
    ``recurrent_weight()``, its parameters): seeded with :data:`BUILD_SEED` and built inside
    ``torch.random.fork_rng``, so torch's global random stream, which draws the run's initial
    weights, is exactly as it was.

    Example:
        >>> cell = CellShape("rnn", ElmanCell, ElmanCell.Params(), 128, task)
        >>> cell.build(input_size=1, hidden_size=4).recurrent_weight().shape
        torch.Size([4, 4])
    """

    def __init__(
        self, name: str, cls: type[Cell], params: Params, hidden_size: int, task: TaskShape
    ) -> None:
        self.name = name
        self.cls = cls
        self.params = params
        self.hidden_size = hidden_size
        self._task = task

    def build(self, input_size: int | None = None, hidden_size: int | None = None) -> Cell:
        """A new instance on the CPU, for a look; never the run's cell.

        :param input_size: default the task's (reading it builds the dataset: pass a small
            number when the input side does not matter).
        :param hidden_size: default the config's; a smaller one is cheaper where the answer
            does not depend on it.
        """
        inputs = self._task.input_size if input_size is None else input_size
        hidden = self.hidden_size if hidden_size is None else hidden_size
        with torch.random.fork_rng(devices=[]):  # the CPU stream is restored on exit
            torch.random.default_generator.manual_seed(BUILD_SEED)  # the CPU's alone, not CUDA's
            return self.cls(inputs, hidden, self.params)

    def __repr__(self) -> str:
        return f"CellShape({self.name!r}, {self.cls.__name__}, hidden_size={self.hidden_size})"
