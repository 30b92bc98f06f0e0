"""The remedy contract: what a remedy may change (cells, model, layer outputs, loss, gradients)
and what it is compatible with."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor, nn

from rnnlab._names import CLIPPED, EXTRA_STEPS
from rnnlab.base._cell import Cell, State
from rnnlab.base._params import Params

if TYPE_CHECKING:
    from rnnlab.base._cellshape import CellShape
    from rnnlab.base._taskshape import TaskShape

_Params = Params  # inside the class below, ``Params`` names the nested class attribute

Batches = Iterator[tuple[Tensor, Tensor]]
"""Training batches ``(x, y)`` on the model's device, as :meth:`Remedy.before_training` and
:meth:`Remedy.between_steps` receive them."""


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
    loss (``loss_term``; with ``needs_states`` it sees every layer's hidden states), act on
    the gradients after backward (``after_backward``) and/or take optimisation steps of its own
    outside the training loss, before training (``before_training``) and between two training
    steps (``between_steps``).
    It declares what it is compatible with: ``requires`` lists cell capabilities it needs and
    ``conflicts`` names remedies it cannot be combined with; ``incompatibility`` may refine that,
    and ``check`` may refine it further with the remedy's options, the task and the cell's
    options (or a throwaway instance). An incompatible combination is refused before anything
    trains (``rnnlab run``) or recorded as ``incompatible`` (sweeps).

    A reason is a clause that reads after a colon, as in ``remedy 'x' is incompatible with cell
    'y': <reason>``: lowercase, no final period, saying why and, where the remedy's options can
    fix it, what to write. rnnlab adds the subject and the hint (remove one of two conflicting
    remedies; the cells that support it), chosen by asking again: without the other remedies,
    with the default options, and with each installed cell.

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
    EXTRA_STEPS: ClassVar[str] = EXTRA_STEPS
    """The core metric key ``train/extra_steps``: how many optimisation steps a call of
    :meth:`before_training` or :meth:`between_steps` took (see there)."""
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
            return f"{', '.join(repr(c) for c in clash)} is among its conflicts"
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

        What ``config.resolve`` calls; the default is :meth:`incompatibility`. Override it when
        compatibility depends on the options, the task or the cell's options and weights
        (``residual`` through time on an additive cell). ``task`` builds the dataset when a size
        is read. An override that declares a seventh parameter ``cell: CellShape | None =
        None`` is also handed the cell's :class:`CellShape` (its resolved ``params`` and
        ``hidden_size``, and ``build()`` for a throwaway instance that leaves torch's random
        stream alone); one without it keeps working.

        It runs wherever a config is resolved: ``rnnlab run`` before training; a sweep's
        coordinator for every grid point when the sweep starts (and ``--dry-run``), for each
        sampled point as it is drawn, and each worker again before it trains its trial; and
        once per installed cell when rnnlab lists the cells that support the remedy. So keep it
        cheap and deterministic, and let it change nothing: no global random draws (use
        ``cell.build()``), no files written, no GPU.
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

    def before_training(self, model: nn.Module, batches: Batches) -> dict[str, float]:
        """Optimisation steps of the remedy's own before the first training step; metrics.

        Gradient flossing's "preflossing" (Engelken 2023) optimises its loss alone here. A
        remedy that does so builds its own optimizer over ``model.parameters()`` (the training
        optimizer is not handed out: its state must not see steps that are not training's),
        calls ``model.constrain()`` after each of its steps, and reports how many it took under
        :attr:`EXTRA_STEPS`; rnnlab logs the running total as ``train/extra_steps``.

        Called once per run, after the model is built, on its device and in train mode, and
        before anything is measured: the step-0 validation, gradient probes and dynamics see the
        weights training starts from, after this hook. (A run of the same seed without the
        remedy starts from the same initial weights, so its step 0 is the "before".) The metrics
        are logged at step 0. ``batches`` is an endless iterator of training batches, the train
        split from its start in an iterator of its own: the training loop's batches are the same
        with and without the remedy. rnnlab runs the hook with torch's global random stream
        seeded from the run's seed and restores the stream afterwards, so its draws are
        deterministic and the training steps draw what they would without it. An exception
        here is the run's failure, as in training.

        :param model: the :class:`rnnlab.SequenceModel`.
        :param batches: training batches ``(x, y)`` on the model's device.
        """
        return {}

    def between_steps(self, done: int, model: nn.Module, batches: Batches) -> dict[str, float]:
        """Optimisation steps of the remedy's own between two training steps; metrics.

        Gradient flossing's "interflossing" runs here every few training steps. Called after
        every training update but the last, ``done`` (1 .. steps - 1) being the number of
        updates done, after that update and before the evaluation and dynamics measured after
        it, so those see the weights the next training step starts from; the remedy keeps its
        own schedule (return ``{}`` on the other steps: the call is cheap). ``batches`` is the
        iterator :meth:`before_training` had (it goes on where that one stopped), the random
        stream is seeded from the run's seed and ``done`` and restored afterwards, and the
        metrics are logged at step ``done``, as in :meth:`before_training`.
        """
        return {}


def takes_cell(check: object) -> bool:
    """Whether a ``check`` (override) declares the ``cell`` parameter (or ``**kwargs``)."""
    parameters = inspect.signature(check).parameters.values()  # type: ignore[arg-type]
    return any(p.name == "cell" or p.kind is p.VAR_KEYWORD for p in parameters)


def remedy_problem(
    remedy: type[Remedy],
    params: Params,
    cell: CellShape,
    remedies: Sequence[str],
    layers: int,
    task: TaskShape,
) -> str | None:
    """``remedy.check`` on this combination, handed ``cell`` when the override takes it."""
    check: Any = remedy.check
    extra = {"cell": cell} if takes_cell(check) else {}
    reason: str | None = check(params, cell.name, cell.cls, remedies, layers, task, **extra)
    return reason
