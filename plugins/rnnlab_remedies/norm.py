"""Recurrent batch normalisation (Cooijmans et al. 2016) and layer normalisation (Ba et al. 2016),
inside the step of a cell with ``normalize``, or between the layers of a cell that asks for it
(``normalize_outputs``: IndRNN, as Li et al. 2018 do).

Inside: batch-norm as published, W_x x_t and W_h h_{t-1} normalised separately with statistics per
time step and gamma 0.1; layer-norm on each gate's summed pre-activation by default (Ba et al.'s
LN-RNN), or on the two terms separately (``terms: separate``, their LN-LSTM). An LSTM's cell
state is normalised too in every case. The cell adds its biases afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal, cast

import torch
from pydantic import Field
from torch import Tensor, nn

import rnnlab

SEPARATE_MIN_INPUTS = 2
"""The narrowest input ``layernorm`` with ``terms: separate`` accepts. With n input channels
W_x x_t spans n dimensions and normalising it over the hidden units removes its scale, leaving
the direction of x_t (n - 1 numbers): with one channel, nothing but sign(x_t). From two channels
on the ratios between channels survive (on the adding problem the marker channel keeps the
marked value). Measured (MEASURED.md): forecast val MSE 315x worse with W_x x_t normalised alone."""


class TimeBatchNorm(rnnlab.Normalizer):
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


class LayerNormalizer(rnnlab.Normalizer):
    """Per-example statistics over the features, the same at training and test time."""

    def __init__(self, features: int, gamma: float, shift: bool, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(features, eps=eps, bias=shift)
        with torch.no_grad():
            self.norm.weight.fill_(gamma)

    def forward(self, x: Tensor, t: int | None) -> Tensor:
        out: Tensor = self.norm(x)
        return out


class FrameBatchNorm(nn.Module):
    """Batch-norm of a layer's output sequence ``[T, B, F]``, each frame normalised with
    statistics over the batch and the time steps together: Li et al.'s ``Batch_norm_overtime``
    (``nn.BatchNorm1d`` on ``[B, F, T]``). Population statistics for evaluation, as nn.BatchNorm1d
    keeps them."""

    def __init__(self, features: int, gamma: float, momentum: float, eps: float) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(features, eps=eps, momentum=momentum)
        with torch.no_grad():
            self.norm.weight.fill_(gamma)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.norm(x.reshape(-1, x.shape[-1]))
        return out.view_as(x)


class FrameLayerNorm(nn.Module):
    """Layer-norm of a layer's output sequence ``[T, B, F]``: every frame (example and step) over
    its features, with a learned scale (initialised to ``gamma``) and shift."""

    def __init__(self, features: int, gamma: float, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(features, eps=eps)
        with torch.no_grad():
            self.norm.weight.fill_(gamma)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.norm(x)
        return out


class _Normalization(rnnlab.Remedy):
    """Normalisers inside each cell (capability ``normalize``) or, for a cell with
    ``normalize_outputs``, on each layer's output sequence between layers (``after_layer``)."""

    stage: ClassVar[int] = 1
    attribute: ClassVar[str] = "between_layer_norms"
    """The name under which the between-layer normalisers are registered on the model."""

    def __init__(self, params: rnnlab.Params | None = None) -> None:
        super().__init__(params)
        self.widths: dict[int, int] = {}  # layer -> width, for the between-layer normalisers
        self.between: dict[int, nn.Module] = {}

    @classmethod
    def incompatibility(
        cls, cell_name: str, cell_cls: type[rnnlab.Cell], remedies: Sequence[str], layers: int
    ) -> str | None:
        if not cell_cls.capabilities & {"normalize", "normalize_outputs"}:
            return (
                f"needs a cell with normalize or normalize_outputs, and cell '{cell_name}' "
                "has neither"
            )
        return super().incompatibility(cell_name, cell_cls, remedies, layers)

    def inside(self, cell: rnnlab.Normalizable) -> None:
        raise NotImplementedError

    def make_between(self, features: int) -> nn.Module:
        raise NotImplementedError

    def apply_cell(self, cell: rnnlab.Cell, layer: int) -> rnnlab.Cell:
        if layer == 0:
            self.widths, self.between = {}, {}
        if "normalize_outputs" in cell.capabilities:
            self.widths[layer] = cell.hidden_size
        else:  # normalize: the cell has set_normalizers (checked when it was registered)
            self.inside(cast(rnnlab.Normalizable, cell))
        return cell

    def apply_model(self, model: nn.Module) -> None:
        if not self.widths:
            return
        norms = nn.ModuleDict({str(k): self.make_between(w) for k, w in self.widths.items()})
        model.add_module(self.attribute, norms)
        self.between = {int(k): norm for k, norm in norms.items()}

    def after_layer(self, layer: int, inputs: Tensor, outputs: Tensor) -> Tensor:
        norm = self.between.get(layer)
        return outputs if norm is None else norm(outputs)


class BatchNormRemedy(_Normalization):
    """Recurrent batch normalisation (Cooijmans et al. 2016) inside a ``normalize`` cell: W_x x_t
    and W_h h_{t-1} normalised separately, statistics per time step, scale shared across time and
    initialised to 0.1 (0.01 or lower is unstable, 1.0 makes tanh saturate and the gradient
    vanish); the cell state gets a shift too. For a ``normalize_outputs`` cell (IndRNN): Li et al.
    2018's batch-norm of each layer's output sequence (:class:`FrameBatchNorm`), gamma 1 as their
    code initialises it."""

    class Params(rnnlab.Params):
        gamma: float | None = Field(
            None,
            gt=0,
            description="initial scale of every normaliser; null: 0.1 inside a cell "
            "(Cooijmans et al.), 1.0 between IndRNN layers (Li et al.'s code)",
        )
        momentum: float = Field(0.1, gt=0, le=1, description="update rate of population statistics")
        eps: float = Field(1e-5, gt=0, description="added to the variance")

    params: Params
    conflicts: ClassVar[frozenset[str]] = frozenset({"layernorm"})

    def gamma(self, default: float) -> float:
        gamma = self.params.gamma
        return default if gamma is None else float(gamma)

    def inside(self, cell: rnnlab.Normalizable) -> None:
        p, gamma = self.params, self.gamma(0.1)

        def make(features: int, role: str) -> rnnlab.Normalizer:
            return TimeBatchNorm(features, gamma, role == "cell", p.momentum, p.eps)

        cell.set_normalizers(make, "separate")

    def make_between(self, features: int) -> nn.Module:
        p = self.params
        return FrameBatchNorm(features, self.gamma(1.0), p.momentum, p.eps)


class LayerNormRemedy(_Normalization):
    """Layer normalisation (Ba et al. 2016): per-example statistics over the hidden units, the
    same at training and test time. ``terms: summed`` (default) normalises each gate's summed
    pre-activation W_x x_t + W_h h_{t-1} (their LN-RNN, section 3.1); ``terms: separate``
    normalises the two terms on their own (their LN-LSTM), which needs an input of at least
    :data:`SEPARATE_MIN_INPUTS` channels. An LSTM's cell state is normalised in both forms. For a
    ``normalize_outputs`` cell (IndRNN) it normalises each frame of the layer's output sequence
    (:class:`FrameLayerNorm`), the place Li et al. 2018 give batch-norm."""

    class Params(rnnlab.Params):
        gamma: float = Field(1.0, gt=0, description="initial scale of every normaliser")
        eps: float = Field(1e-5, gt=0, description="added to the variance")
        terms: Literal["summed", "separate"] = Field(
            "summed",
            description="summed: each gate's W_x x_t + W_h h_{t-1} (Ba et al.'s LN-RNN); "
            "separate: the two terms on their own (their LN-LSTM; not on one-channel inputs)",
        )

    params: Params
    conflicts: ClassVar[frozenset[str]] = frozenset({"batchnorm"})

    @classmethod
    def check(
        cls,
        params: rnnlab.Params,
        cell_name: str,
        cell_cls: type[rnnlab.Cell],
        remedies: Sequence[str],
        layers: int,
        task: rnnlab.TaskShape,
    ) -> str | None:
        assert isinstance(params, cls.Params)  # rnnlab.run.resolve validated it with this model
        if params.terms == "separate":
            if "normalize_outputs" in cell_cls.capabilities:
                return (
                    f"terms: separate places normalisers inside the step, and cell "
                    f"'{cell_name}' is normalised between layers (normalize_outputs); "
                    "remove terms"
                )
            if task.input_size < SEPARATE_MIN_INPUTS:
                return (
                    f"terms: separate normalises W_x x_t over the hidden units on its own, and "
                    f"the task's input has {task.input_size} channel: LN(w * x_t) = "
                    f"sign(x_t) * LN(w), so the cell would see only the sign of its input. It "
                    f"needs at least {SEPARATE_MIN_INPUTS} input channels; use terms: summed "
                    "(the default), which normalises W_x x_t + W_h h_{t-1} (Ba et al. 2016)"
                )
        return super().check(params, cell_name, cell_cls, remedies, layers, task)

    def inside(self, cell: rnnlab.Normalizable) -> None:
        p = self.params

        def make(features: int, role: str) -> rnnlab.Normalizer:
            return LayerNormalizer(features, p.gamma, role == "cell", p.eps)

        cell.set_normalizers(make, p.terms)

    def make_between(self, features: int) -> nn.Module:
        p = self.params
        return FrameLayerNorm(features, p.gamma, p.eps)
