"""The dataset contract: a task's seeded batches and the loss and accuracy its kind implies."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import ClassVar

from torch import Tensor, nn

from rnnlab.base._params import Params

_Params = Params  # inside the class below, ``Params`` names the nested class attribute


class TaskKind(enum.StrEnum):
    """Where a task's targets are, which fixes its loss and default accuracy."""

    REGRESSION_LAST = "regression_last"  # MSE on the last step's output
    CLASSIFY_LAST = "classify_last"  # cross-entropy on the last step's output
    CLASSIFY_EVERY = "classify_every"  # cross-entropy averaged over every step


class Dataset:
    """A task: seeded batches plus the loss and accuracy its kind implies.

    Subclasses set ``kind`` and, in ``__init__``, ``input_size``, ``output_size`` and ``seq_len``.
    ``batches("train", n)`` never ends and is seeded by ``seed``; ``"val"`` and ``"test"`` iterate
    once over a set that is fixed for a given seed. Batches are ``(x, y)`` with ``x`` of shape
    ``[T, B, input_size]``; ``y`` is ``[B, output_size]`` (regression), ``[B]`` (class at the last
    step) or ``[T, B]`` (class at every step).

    The *target* of a task is the steps whose loss needs memory (:meth:`target_steps`); rnnlab
    measures the gradient of their loss alone (:meth:`target_loss`) beside the gradient of the
    whole loss. A dataset that declares nothing has the last step as its target.
    """

    Params: ClassVar[type[Params]] = Params
    kind: ClassVar[TaskKind]
    tolerance: ClassVar[float] = 0.04
    """Regression accuracy: the fraction of sequences with every |error| below this."""

    input_size: int
    output_size: int
    seq_len: int
    baseline_loss: float | None = None
    """The loss of a trivial predictor, if the task has a well-known one (:meth:`baseline`)."""

    def __init__(self, params: _Params | None = None, seed: int = 0) -> None:
        self.params = params if params is not None else type(self).Params()
        self.seed = seed

    def batches(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        raise NotImplementedError

    def label(self) -> str:
        """A short human label used in run names, e.g. ``"adding T=100"``."""
        return f"{type(self).__name__} T={self.seq_len}"

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        if self.kind is TaskKind.REGRESSION_LAST:
            return nn.functional.mse_loss(out, y)
        return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

    def target_steps(self) -> slice:
        """The time steps whose loss needs memory: the task's target (default: the last step).

        They index the time axis of an every-step task's ``out`` ``[T, B, O]`` and ``y``
        ``[T, B]``: copy memory's 10 recall steps are ``slice(-10, None)``. A last-step task's
        loss is on its last step alone, so its target is the whole loss whatever this says.
        """
        return slice(-1, None)

    def target_loss(self, out: Tensor, y: Tensor) -> Tensor | None:
        """The target steps' share of ``loss(out, y)``, or None when that share is all of it.

        rnnlab's target curve is ||d(target loss)/dh_t||, taken on probed steps only. With a
        loss at every step, dL/dh_t contains step t's own loss term and stays flat even when the
        signal from the steps that need memory has vanished; the target curve shows it (the
        gradient of a loss at the end of the sequence, as Arjovsky et al. 2016 and Pascanu et
        al. 2013 plot it). The share keeps the training loss's normalisation, so that the total
        gradient is the target's plus the rest's: for a loss averaged over T steps, the target
        steps' terms over T.

        Default: None for the last-step kinds (the loss is the target's); for ``classify_every``,
        ``loss`` on the :meth:`target_steps` times their fraction of the T steps, which is right
        for any loss that is a mean over steps (override it for one that is not), and None when
        they are all the steps. Returning None means no extra backward pass runs.
        """
        if self.kind is not TaskKind.CLASSIFY_EVERY:
            return None
        steps = self.target_steps()
        picked = len(range(out.shape[0])[steps])
        if picked == 0:
            name = type(self).__name__
            raise ValueError(
                f"{name}.target_steps() = {steps} selects none of {out.shape[0]} steps"
            )
        if picked == out.shape[0]:
            return None
        return self.loss(out[steps], y[steps]) * (picked / out.shape[0])

    def baseline(self, metric: str) -> float | None:
        """The value of the objective ``metric`` (``val/loss``, ``val/bpc``, ...) that the task's
        trivial predictor scores, or None when the task declares none: what a model must beat
        to have learned anything (the report's findings, rnnlab.report._findings).

        Default: :attr:`baseline_loss` for ``<split>/loss``, the task's :meth:`derived_metrics`
        of it for a metric derived from the loss (``bpc``, ``nrmse``), None for anything else
        (an accuracy). The built-in tasks declare ``baseline_loss``: the adding problem's 1/6
        (always answering 1, the mean of the sum of two U(0, 1), whose variance is 2/12; Hochreiter
        & Schmidhuber 1997), copy memory's ``10 ln 8 / (T + 20)`` (a memoryless predictor,
        Arjovsky et al. 2016), chars' unigram cross-entropy and forecast's persistence MSE on the
        validation split. A third-party task sets ``baseline_loss`` or overrides this."""
        if self.baseline_loss is None:
            return None
        split, _, name = metric.partition("/")
        if name == "loss":
            return float(self.baseline_loss)
        derived = self.derived_metrics({f"{split}/loss": float(self.baseline_loss)})
        return float(derived[metric]) if metric in derived else None

    def derived_metrics(self, scores: dict[str, float]) -> dict[str, float]:
        """Task-specific metrics computed from an evaluation's ``<split>/loss`` and
        ``<split>/accuracy`` (bits per character, normalised RMSE...); logged beside them."""
        return {}

    def accuracy(self, out: Tensor, y: Tensor) -> Tensor:
        if self.kind is TaskKind.REGRESSION_LAST:
            ok = ((out - y).abs() < self.tolerance).all(dim=-1)
        else:
            ok = out.argmax(dim=-1) == y
        return ok.float().mean()
