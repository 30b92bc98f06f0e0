"""The remedy contract: what a remedy may change (cells, model, layer outputs, loss, gradients)
and what it is compatible with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from torch import Tensor, nn

from rnnlab._names import CLIPPED
from rnnlab.base._cell import Cell, State
from rnnlab.base._params import Params

if TYPE_CHECKING:
    from rnnlab.base._taskshape import TaskShape

_Params = Params  # inside the class below, ``Params`` names the nested class attribute


@dataclass
class LayerTrace:
    """What one recurrent layer computed in a forward pass run with ``traces`` (see
    :attr:`Remedy.needs_states`): enough to recompute any single time step.

    ``cell.step(inputs[t], states[t], t)`` gives ``hidden[t]`` again. ``states[t]`` is the full
    :data:`State` fed to step ``t`` (``states[0]`` is the initial state); ``hidden[t]`` is the
    ``h_t`` the rest of the network used (the probe already added when the step is probed), so
    ``torch.autograd.grad(loss, trace.hidden)`` is dL/dh_t for every t.
    """

    cell: Cell
    inputs: list[Tensor] = field(default_factory=list)
    states: list[State] = field(default_factory=list)
    hidden: list[Tensor] = field(default_factory=list)


class Remedy:
    """A remedy for vanishing or exploding gradients.

    A remedy may change the cells (``apply_cell``: re-initialise, wrap, add normalisers), the
    model (``apply_model``), each layer's output sequence (``after_layer``), add a term to the
    loss (``loss_term``; with ``needs_states`` it sees every layer's hidden states) and/or act on
    the gradients after backward (``after_backward``).
    It declares what it is compatible with: ``requires`` lists cell capabilities it needs and
    ``conflicts`` names remedies it cannot be combined with; ``incompatibility`` may refine that,
    and ``check`` may refine it further with the remedy's options and the task. An incompatible
    combination is refused before anything trains.

    One instance serves one model: ``build_model`` hands it every layer's cell, then the model
    (``apply_model``: register modules of the remedy's own there with ``model.add_module``), and
    the model calls ``after_layer`` on every forward pass.
    """

    Params: ClassVar[type[Params]] = Params
    requires: ClassVar[frozenset[str]] = frozenset()
    conflicts: ClassVar[frozenset[str]] = frozenset()
    stage: ClassVar[int] = 2
    """Remedies act on a cell in increasing stage (0 re-initialise, 1 modify in place, 2 wrap);
    equal stages keep the config's order. So ``[residual, relu]`` re-initialises, then wraps."""
    CLIPPED: ClassVar[str] = CLIPPED
    """The core metric key ``grad/clipped`` that :meth:`after_backward` reports (see there)."""
    needs_states: ClassVar[bool] = False
    """True when ``loss_term`` needs the hidden states: the model then keeps a :class:`LayerTrace`
    per layer on every training step (and runs the hand-written loop, not a fused one)."""

    def __init__(self, params: _Params | None = None) -> None:
        self.params = params if params is not None else type(self).Params()

    @classmethod
    def incompatibility(
        cls, cell_name: str, cell_cls: type[Cell], remedies: Sequence[str], layers: int
    ) -> str | None:
        """Why this remedy cannot run with this combination, or None when it can."""
        missing = sorted(cls.requires - cell_cls.capabilities)
        if missing:
            return f"needs a cell with {', '.join(missing)}, and cell '{cell_name}' has none"
        clash = sorted(cls.conflicts.intersection(remedies))
        if clash:
            return f"cannot be combined with {', '.join(repr(c) for c in clash)}"
        return None

    @classmethod
    def check(
        cls,
        params: _Params,
        cell_name: str,
        cell_cls: type[Cell],
        remedies: Sequence[str],
        layers: int,
        task: TaskShape,
    ) -> str | None:
        """Why this remedy, with these options, cannot run on this cell and task; None if it can.

        What ``config.resolve`` calls (a sweep records a reason as ``incompatible``); the default
        is :meth:`incompatibility`. Override it when compatibility depends on the options or the
        task (``residual`` through time on an additive cell); reading ``task`` builds the
        dataset. A reason should say what to change.
        """
        return cls.incompatibility(cell_name, cell_cls, remedies, layers)

    def apply_cell(self, cell: Cell, layer: int) -> Cell:
        """Return the cell to use for ``layer`` (the same one, re-initialised, or a wrapper)."""
        return cell

    def apply_model(self, model: nn.Module) -> None:
        """Change the model (an :class:`rnnlab.SequenceModel`) as a whole; register modules of
        the remedy's own here with ``model.add_module(name, module)`` (the batch-norm between
        IndRNN layers)."""

    def after_layer(self, layer: int, inputs: Tensor, outputs: Tensor) -> Tensor:
        """The output sequence of layer ``layer`` as the layer above (or the head) receives it.

        Called on every forward pass (probed or not, fused or not), remedies in ``stage`` order:
        ``inputs`` is what the layer received (``[T, B, *]``), ``outputs`` its h_t for every t
        (``[T, B, hidden]``, after earlier remedies' ``after_layer``); the probes measure h_t
        before this. Residual connections across layers and the normalisers between IndRNN
        layers act here. Default: ``outputs``.
        """
        return outputs

    def loss_term(
        self, loss: Tensor, traces: Sequence[LayerTrace]
    ) -> tuple[Tensor, dict[str, float]] | None:
        """A term to add to the training loss before backward, and metrics to log; None for none.

        :param loss: the task's loss on this training batch (its graph is kept for this call).
        :param traces: one :class:`LayerTrace` per layer, bottom first, when ``needs_states``
            is true; empty otherwise.
        """
        return None

    def after_backward(self, parameters: Sequence[Tensor], grad_norm: float) -> dict[str, float]:
        """Act on gradients after backward, before the optimizer step; return metrics to log.

        A remedy that changes the gradients reports it in the core metric :attr:`CLIPPED`
        (``grad/clipped``): 1.0 on a step where it changed them, 0.0 where not. rnnlab logs
        ``grad/clipped`` on every run, 0.0 when no remedy reports it, 1.0 when any one does.

        :param grad_norm: the global gradient norm before any remedy touched the gradients.
        """
        return {}
