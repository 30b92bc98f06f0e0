"""A run's task as plugins see it while the config is resolved: its sizes, read lazily."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rnnlab.base._dataset import Dataset, TaskKind


class TaskShape:
    """A run's task as the plugins' options and checks see it: the dataset's ``input_size``,
    ``output_size``, ``seq_len`` and ``kind``.

    ``rnnlab.run.resolve`` hands one to :meth:`Cell.resolve_params` and :meth:`Remedy.check`. Built
    from a dataset or from a function that makes one; the function runs when a size is first
    read, so a config whose plugins need no size never builds its dataset while it is resolved.

    Example:
        >>> task = TaskShape(AddingProblem(AddingProblem.Params(seq_len=200)))
        >>> task.seq_len, task.input_size
        (200, 2)
    """

    def __init__(self, dataset: Dataset | Callable[[], Dataset]) -> None:
        self._dataset: Dataset | None = None
        self._make: Callable[[], Dataset] | None = None
        if callable(dataset):  # a function that makes one (a Dataset is not callable)
            self._make = dataset
        else:
            self._dataset = dataset

    def dataset(self) -> Dataset:
        """The dataset, built on first use."""
        if self._dataset is None:
            assert self._make is not None
            self._dataset = self._make()
        return self._dataset

    @property
    def input_size(self) -> int:
        return self.dataset().input_size

    @property
    def output_size(self) -> int:
        return self.dataset().output_size

    @property
    def seq_len(self) -> int:
        return self.dataset().seq_len

    @property
    def kind(self) -> TaskKind:
        return self.dataset().kind
