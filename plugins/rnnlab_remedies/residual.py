"""Residual connections through time (a small Euler step) and across stacked layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field
from torch import Tensor

import rnnlab

DEFAULT_STEP = 0.1
"""The through-time step's default, measured (docs/config.md, "residual"): on the flagship's
adding problem, tanh and ReLU RNNs, the step size 1 diverged or reached val MSE far above the
baseline while small steps trained."""


class ResidualCell(rnnlab.CellWrapper):
    """h_t = h_{t-1} + step * F(x_t, h_{t-1}): an Euler step of size ``step`` along the inner
    cell's update, as in AntisymmetricRNN (Chang et al. 2019, eps) and Lipschitz RNN (Erichson et
    al. 2021). The identity path carries the gradient back unchanged; the step keeps the sum of
    T updates from growing with T as it does at step 1."""

    additive: ClassVar[bool] = True

    def __init__(self, inner: rnnlab.Cell, step: float = 1.0) -> None:
        super().__init__(inner)
        self.step_size = step

    def step(self, u_t: Tensor, state: rnnlab.State, t: int) -> tuple[Tensor, rnnlab.State]:
        update, inner_state = self.inner.step(u_t, state, t)
        h = state[0] + self.step_size * update
        return h, (h, *inner_state[1:])


class Residual(rnnlab.Remedy):
    """Through time (each cell wrapped as :class:`ResidualCell`) and across layers: layer l > 0
    adds its input to its output sequence (``after_layer``), as residual stacks do (GNMT, Wu et
    al. 2016; Residual IndRNN, Li et al. 2019), when the model has more than one layer.

    The through-time form is refused on a cell whose update is already additive (``additive``:
    lstm, gru) and together with ``gating``: there F carries h_{t-1} already, so h_{t-1} would be
    counted twice (GRU: h_{t-1} + F = (1 + z) h_{t-1} + (1 - z) n). ``through_time: false`` keeps
    the across-layers form, which any cell takes.
    """

    class Params(rnnlab.Params):
        through_time: bool = Field(True, description="h_t = h_{t-1} + step * F(x_t, h_{t-1})")
        step: float = Field(
            DEFAULT_STEP, gt=0, description="the through-time step size (1 = the plain sum)"
        )
        across_layers: bool = Field(True, description="h^l_t = h^{l-1}_t + layer_l(...) for l > 0")

    params: Params

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
        if params.through_time:
            fix = "use through_time: false to keep only the connections across layers"
            if cell_cls.additive:
                return (
                    f"through time it would count h_{{t-1}} twice: cell '{cell_name}' declares "
                    f"additive (its update already carries the previous state); {fix}, or "
                    "another cell"
                )
            if "gating" in remedies:
                return (
                    "cannot be combined with 'gating' through time: the gated update "
                    "h_{t-1} + z * (F - h_{t-1}) already carries h_{t-1}, which would be counted "
                    f"twice; {fix}"
                )
        return super().check(params, cell_name, cell_cls, remedies, layers, task)

    def apply_cell(self, cell: rnnlab.Cell, layer: int) -> rnnlab.Cell:
        if not self.params.through_time:
            return cell
        if cell.additive:  # the config check refuses this; a model built by hand is told too
            raise ValueError(
                f"residual through time on {type(cell).__name__}, whose update is already "
                "additive: h_{t-1} would be counted twice; set through_time: false"
            )
        return ResidualCell(cell, float(self.params.step))

    def after_layer(self, layer: int, inputs: Tensor, outputs: Tensor) -> Tensor:
        if self.params.across_layers and layer > 0:
            return outputs + inputs
        return outputs
