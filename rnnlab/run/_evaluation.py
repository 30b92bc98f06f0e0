"""Held-out evaluation: the val split during training, the test split once at the end of a
completed run, the weights the test split sees (``train.select``), and the recurrent weights'
spectra that accompany each evaluation."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from rnnlab._names import ACCURACY, LOSS, SPECTRAL_NORM, SPECTRAL_RADIUS, VAL_LOSS, layer_key

if TYPE_CHECKING:
    from rnnlab.base import Dataset
    from rnnlab.run._model import SequenceModel


@torch.no_grad()
def evaluate(
    model: SequenceModel, dataset: Dataset, split: str, batch_size: int, device: torch.device
) -> dict[str, float]:
    """Mean loss and accuracy over a whole held-out split, and the task's derived metrics:
    ``<split>/loss``, ``<split>/accuracy``, e.g. ``<split>/bpc``."""
    model.eval()
    loss = accuracy = 0.0
    count = 0
    for x, y in dataset.batches(split, batch_size):
        x, y = x.to(device), y.to(device)
        out, _ = model(x)
        n = x.shape[1]
        loss += float(dataset.loss(out, y)) * n
        accuracy += float(dataset.accuracy(out, y)) * n
        count += n
    model.train()
    scores = {f"{split}/{LOSS}": loss / count, f"{split}/{ACCURACY}": accuracy / count}
    return scores | dataset.derived_metrics(scores)


def nonfinite(scores: dict[str, float]) -> str | None:
    """``"key value"`` of the first score that is NaN or Inf; None when every one is finite.

    A non-finite evaluation is a diverged run, never a completed one: the weights after an
    update can overflow although the loss and gradient that made the update were finite."""
    for key, value in scores.items():
        if not math.isfinite(value):
            return f"{key} {value}"
    return None


def weight_metrics(model: SequenceModel) -> dict[str, float]:
    """Spectral norm (and radius, when square) of every layer's recurrent weight.

    Taken with each evaluation, not on probed steps: they describe the weights, need no probe,
    and the eigenvalues cost as much as the probes on a small rnn step (benchmarks/probing.py).
    A weight that is no longer finite (a diverged run) has none."""
    layers = len(model.cells)
    metrics: dict[str, float] = {}
    with torch.no_grad():
        for layer, cell in enumerate(model.cells):
            weight = cell.recurrent_weight()  # type: ignore[operator]
            if weight is None:
                continue
            weight = weight.detach().float()
            if not bool(torch.isfinite(weight).all()):
                continue
            metrics[layer_key(SPECTRAL_NORM, layer, layers)] = float(
                torch.linalg.matrix_norm(weight, ord=2)
            )
            if weight.shape[0] == weight.shape[1]:
                radius = torch.linalg.eigvals(weight.cpu()).abs().max()
                metrics[layer_key(SPECTRAL_RADIUS, layer, layers)] = float(radius)
    return metrics


class Selection:
    """The weights the test split is evaluated on, by the rule of ``train.select``.

    ``final``: the weights after the last step. ``best_val``: the weights of the validation
    evaluation (step 0 and every ``eval_every`` included) with the lowest ``val/loss``, the first
    one on a tie, as coRNN (Rusch & Mishra 2021) and LEM (Rusch et al. 2022) report their test
    numbers. Those weights are copied (on their device) at each improvement, buffers such as
    batch-norm's statistics included; ``final`` copies nothing.
    """

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.step: int | None = None  # the step of the chosen weights
        self.best = math.inf
        self._state: dict[str, torch.Tensor] | None = None

    def offer(self, model: SequenceModel, step: int, scores: dict[str, float]) -> None:
        """A finite validation evaluation of the model after ``step`` updates."""
        if self.rule != "best_val":
            self.step = step
            return
        loss = scores[VAL_LOSS]
        if loss < self.best:
            self.best, self.step = loss, step
            self._state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore(self, model: SequenceModel) -> int:
        """Load the chosen weights into ``model`` (``final``: leave it); their step."""
        if self._state is not None:
            model.load_state_dict(self._state)
        assert self.step is not None, "no evaluation was offered"
        return self.step
