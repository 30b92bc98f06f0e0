"""Recurrent batch normalisation (Cooijmans et al. 2016) and layer normalisation (Ba et al. 2016).

Both put normalisers on the cell's input term W_x x_t and recurrent term W_h h_{t-1} separately
(and on an LSTM's cell state before its output tanh); the cell adds its bias afterwards.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn

import rnnlab
from rnnlab.base import Cell, Normalizer


class TimeBatchNorm(Normalizer):
    """Batch-norm with statistics per time step and a scale (and, for the cell state, a shift)
    shared across time. Population statistics are kept per step; past the longest sequence seen in
    training, evaluation uses the last step's statistics (as Cooijmans et al. do)."""

    def __init__(
        self, features: int, gamma: float, shift: bool, momentum: float, eps: float
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((features,), gamma))
        self.bias = nn.Parameter(torch.zeros(features)) if shift else None
        self.momentum = momentum
        self.eps = eps
        self.running_mean: Tensor
        self.running_var: Tensor
        self.register_buffer("running_mean", torch.zeros(0, features))
        self.register_buffer("running_var", torch.ones(0, features))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # the per-step buffers grow in training: take the saved length before loading them
        for name in ("running_mean", "running_var"):
            saved = state_dict.get(prefix + name)
            if saved is not None:
                current = getattr(self, name)
                setattr(self, name, current.new_empty(saved.shape))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _grow(self, steps: int, like: Tensor) -> None:
        have = self.running_mean.shape[0]
        if steps > have:
            extra = steps - have
            shape = (extra, self.running_mean.shape[1])
            self.running_mean = torch.cat([self.running_mean, like.new_zeros(shape)])
            self.running_var = torch.cat([self.running_var, like.new_ones(shape)])

    def forward(self, x: Tensor, t: int | None) -> Tensor:
        # x is [B, F] at step t, or a whole sequence [T, B, F] when t is None
        seq = x if t is None else x.unsqueeze(0)
        first = 0 if t is None else t
        steps = slice(first, first + seq.shape[0])
        if self.training:
            mean = seq.mean(dim=1)
            var = seq.var(dim=1, unbiased=False)
            with torch.no_grad():
                self._grow(steps.stop, x)
                m = self.momentum
                self.running_mean[steps].mul_(1 - m).add_(m * mean.detach())
                self.running_var[steps].mul_(1 - m).add_(m * var.detach())
        else:
            last = max(self.running_mean.shape[0] - 1, 0)
            index = torch.arange(steps.start, steps.stop, device=x.device).clamp(max=last)
            if self.running_mean.shape[0] == 0:
                mean, var = (
                    seq.new_zeros(seq.shape[0], seq.shape[2]),
                    seq.new_ones(seq.shape[0], seq.shape[2]),
                )
            else:
                mean, var = self.running_mean[index], self.running_var[index]
        out = (seq - mean.unsqueeze(1)) * torch.rsqrt(var.unsqueeze(1) + self.eps) * self.weight
        if self.bias is not None:
            out = out + self.bias
        return out if t is None else out[0]


class LayerNormalizer(Normalizer):
    """Per-example statistics over the hidden units, the same at training and test time."""

    def __init__(self, features: int, gamma: float, shift: bool, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(features, eps=eps, bias=shift)
        with torch.no_grad():
            self.norm.weight.fill_(gamma)

    def forward(self, x: Tensor, t: int | None) -> Tensor:
        out: Tensor = self.norm(x)
        return out


class BatchNormRemedy(rnnlab.Remedy):
    """Recurrent batch-norm: gamma initialised to 0.1 (Cooijmans et al.: 0.01 or lower is
    unstable, 1.0 makes tanh saturate and the gradient vanish)."""

    class Params(rnnlab.Params):
        gamma: float = Field(0.1, gt=0, description="initial scale of every normaliser")
        momentum: float = Field(0.1, gt=0, le=1, description="update rate of population statistics")
        eps: float = Field(1e-5, gt=0, description="added to the variance")

    requires: ClassVar[frozenset[str]] = frozenset({"normalize"})
    conflicts: ClassVar[frozenset[str]] = frozenset({"layernorm"})
    stage: ClassVar[int] = 1

    def apply_cell(self, cell: Cell, layer: int) -> Cell:
        p = self.params

        def make(features: int, role: str) -> Normalizer:
            return TimeBatchNorm(features, p.gamma, role == "cell", p.momentum, p.eps)  # type: ignore[attr-defined]

        cell.set_normalizers(make)
        return cell


class LayerNormRemedy(rnnlab.Remedy):
    """Layer normalisation of the input and recurrent terms (and an LSTM's cell state)."""

    class Params(rnnlab.Params):
        gamma: float = Field(1.0, gt=0, description="initial scale of every normaliser")
        eps: float = Field(1e-5, gt=0, description="added to the variance")

    requires: ClassVar[frozenset[str]] = frozenset({"normalize"})
    conflicts: ClassVar[frozenset[str]] = frozenset({"batchnorm"})
    stage: ClassVar[int] = 1

    def apply_cell(self, cell: Cell, layer: int) -> Cell:
        p = self.params

        def make(features: int, role: str) -> Normalizer:
            return LayerNormalizer(features, p.gamma, role == "cell", p.eps)  # type: ignore[attr-defined]

        cell.set_normalizers(make)
        return cell
