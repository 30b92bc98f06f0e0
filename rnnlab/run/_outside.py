"""The remedies' optimisation steps outside the training loss: :meth:`rnnlab.Remedy.before_training`
and :meth:`rnnlab.Remedy.between_steps` (gradient flossing's preflossing and interflossing).

The training loop calls :meth:`OutsideSteps.before` once, before the step-0 measurements, and
:meth:`OutsideSteps.between` after every update but the last; both log what the remedies report.
Each call runs inside ``torch.random.fork_rng`` seeded from the run's seed (and ``done``), so a
remedy's draws are deterministic and the training steps draw what they would without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from rnnlab._names import EXTRA_STEPS
from rnnlab.base import Dataset, Remedy
from rnnlab.run._model import SequenceModel
from rnnlab.run._tracking import Tracker

SEED_OFFSET = 0x0F1055  # the remedies' stream is not the one that drew the initial weights


def takes_outside_steps(remedy: Remedy) -> bool:
    """Whether ``remedy`` overrides either hook (else the loop skips the calls entirely)."""
    cls = type(remedy)
    return (
        cls.before_training is not Remedy.before_training
        or cls.between_steps is not Remedy.between_steps
    )


class OutsideSteps:
    """Calls the hooks of the remedies that have them, in the config's order, and logs their
    metrics and the running total of their steps (``train/extra_steps``)."""

    def __init__(
        self,
        remedies: Sequence[Remedy],
        model: SequenceModel,
        dataset: Dataset,
        batch_size: int,
        device: torch.device,
        seed: int,
    ) -> None:
        self.remedies = [r for r in remedies if takes_outside_steps(r)]
        self.model = model
        self.seed = seed
        self.total = 0.0
        self._device = device
        self._source = (dataset, batch_size)
        self._batches: Iterator[tuple[Tensor, Tensor]] | None = None

    def __bool__(self) -> bool:
        return bool(self.remedies)

    def batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The remedies' own iterator over the train split, from its start (lazy: a remedy
        that draws no batch costs nothing)."""
        if self._batches is None:
            self._batches = self._iterate()
        return self._batches

    def _iterate(self) -> Iterator[tuple[Tensor, Tensor]]:
        dataset, size = self._source
        for x, y in dataset.batches("train", size):
            yield x.to(self._device), y.to(self._device)

    def before(self, tracker: Tracker) -> None:
        """Every remedy's ``before_training``; its metrics logged at step 0."""
        self._call(0, tracker, lambda r: r.before_training(self.model, self.batches()))

    def between(self, done: int, tracker: Tracker) -> None:
        """Every remedy's ``between_steps(done, ...)``; metrics logged at step ``done``."""
        self._call(done, tracker, lambda r: r.between_steps(done, self.model, self.batches()))

    def _call(
        self, done: int, tracker: Tracker, hook: Callable[[Remedy], dict[str, float]]
    ) -> None:
        metrics: dict[str, float] = {}
        taken = 0.0
        devices = [self._device] if self._device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed * 1_000_003 + SEED_OFFSET + done)
            for remedy in self.remedies:
                self.model.train()
                reported = dict(hook(remedy))
                taken += float(reported.pop(EXTRA_STEPS, 0.0))
                metrics.update(reported)
        self.model.train()
        if taken:
            self.total += taken
            metrics[EXTRA_STEPS] = self.total
        if metrics:
            tracker.log_metrics(metrics, step=done)
