"""The base classes every cell, dataset and remedy plugin subclasses (built-in or third-party).

Tensors are time-major throughout: a sequence batch is ``[T, B, features]``, as in ``nn.RNN``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

if TYPE_CHECKING:
    from rnnlab.model import SequenceModel
    from rnnlab.taskshape import TaskShape

State = tuple[Tensor, ...]
"""A cell's recurrent state. ``state[0]`` is the hidden state h that probing measures; the model may
replace it (it adds the probe there), so a cell must read h from ``state[0]``."""


class Params(BaseModel):
    """Base for a plugin's nested ``Params`` model: unknown keys are rejected, values are frozen.

    Example:
        >>> class Params(rnnlab.Params):
        ...     max_norm: float = 1.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


_Params = Params  # inside the classes below, ``Params`` names the nested class attribute


class TaskKind(enum.StrEnum):
    """Where a task's targets are, which fixes its loss and default accuracy."""

    REGRESSION_LAST = "regression_last"  # MSE on the last step's output
    CLASSIFY_LAST = "classify_last"  # cross-entropy on the last step's output
    CLASSIFY_EVERY = "classify_every"  # cross-entropy averaged over every step


class Normalizer(nn.Module):
    """A normalisation applied inside a cell: ``forward(x, t)`` with ``t`` the time index
    (batch-norm keeps statistics per time step; layer-norm ignores it)."""

    def forward(self, x: Tensor, t: int | None) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


NormalizerFactory = Callable[[int, str], Normalizer]
"""``make(features, role)``, called by :meth:`Cell.set_normalizers` once per normaliser it places.

Roles: ``"summed"`` (one per gate, in gate order, ``features`` = hidden size: that gate's summed
pre-activation W_x x_t + W_h h_{t-1}, the biases added after it; Ba et al. 2016), ``"input"`` and
``"hidden"`` (the separate-terms form: W_x x_t and W_h h_{t-1} each on its own, ``features`` = the
width of all gates together; Cooijmans et al. 2016, Ba et al.'s LN-LSTM) and ``"cell"`` (an LSTM's
cell state c_t before its output tanh, in both forms)."""

NormTerms = Literal["summed", "separate"]
"""Which pre-activation a normaliser inside a cell sees (see :data:`NormalizerFactory`)."""


class Cell(nn.Module):
    """One recurrent step. The model owns the time loop; a cell never loops over time.

    Contract:
        * ``__init__(input_size, hidden_size, params)`` with ``params`` an instance of ``Params``.
        * ``init_state(batch, device, dtype)`` returns the initial :data:`State`.
        * ``forward(x_t, state) -> (h_t, state)`` for ``x_t`` of shape ``[B, input_size]``;
          ``h_t`` is ``[B, hidden_size]`` and equals ``state[0]`` of the returned state.

    Optional speed-ups (the built-in cells use all three):
        * ``project_inputs(x)`` computes every step's input term at once (``[T, B, *]``) and
          ``step(u_t, state, t)`` consumes one of them, so no matrix product on x runs in the loop.
        * ``has_fused`` / ``forward_fused(x, state)``: a fused whole-sequence path (``nn.LSTM``,
          cuDNN on a GPU) that the model uses on steps where no probe is taken. It must share the
          parameters of the step path and give the same result.

    Optional hooks: ``resolve_params(params, task)`` replaces options that follow the task
    (IndRNN's ``recurrent_max: auto``) when the config is resolved; ``init_layer(layer, layers)``
    runs once the cell is made, for initialisations that depend on its depth.

    Capabilities (``capabilities`` class attribute) tell remedies what a cell can do:
        * ``"identity_init"``: ``init_identity(scale, nonlinearity)`` (the IRNN recipe).
        * ``"normalize"``: ``set_normalizers(make, terms)`` puts normalisers inside the step, on
          each gate's summed pre-activation (``terms="summed"``) or on the input and recurrent
          terms separately (``"separate"``); the roles are listed at :data:`NormalizerFactory`.
        * ``"normalize_outputs"``: norm remedies normalise the layer's output sequence between
          layers, never inside the recurrence (Li et al. 2018 for IndRNN, whose bounded u a
          normaliser inside would cancel); takes precedence over ``"normalize"``.

    ``additive = True`` declares that the update already carries the previous state through a
    sum or an interpolation (LSTM's c_t = f c_{t-1} + i g, GRU's z h_{t-1} + (1 - z) n): a
    residual connection through time would count it twice, so ``residual`` refuses the cell.
    """

    Params: ClassVar[type[Params]] = Params
    capabilities: ClassVar[frozenset[str]] = frozenset()
    additive: ClassVar[bool] = False

    def __init__(self, input_size: int, hidden_size: int, params: _Params | None = None) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.params = params if params is not None else type(self).Params()

    @classmethod
    def resolve_params(cls, params: _Params, task: TaskShape) -> _Params:
        """``params`` with every option that follows the task replaced by its value (called by
        ``config.resolve``; the run logs the result). Reading ``task`` builds the dataset."""
        return params

    def init_layer(self, layer: int, layers: int) -> None:
        """Called by ``build_model`` right after the cell is made, before any remedy acts: this
        cell is layer ``layer`` (0 = bottom) of ``layers``. Default: nothing."""

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        return (torch.zeros(batch, self.hidden_size, device=device, dtype=dtype),)

    def project_inputs(self, x: Tensor) -> Tensor:
        """Input terms of every step at once; the identity unless a cell hoists a projection."""
        return x

    def step(self, u_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        """One step on a projected input; by default ``forward`` on the raw input."""
        result: tuple[Tensor, State] = self(u_t, state)
        return result

    @property
    def has_fused(self) -> bool:
        return False

    def forward_fused(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        raise NotImplementedError(f"{type(self).__name__} has no fused sequence path")

    def recurrent_weight(self) -> Tensor | None:
        """The matrix that multiplies h_{t-1} (for spectral norms), or None."""
        return None

    def input_weight(self) -> Tensor | None:
        """The parameter (or a view of it) that multiplies x_t, or None; remedies may
        re-initialise it in place (the ``relu`` remedy's ``input_std``)."""
        return None

    def constrain(self) -> None:
        """Called after every optimizer step: enforce parameter constraints in place."""

    def init_identity(self, scale: float, nonlinearity: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not support identity_init")

    def set_normalizers(self, make: NormalizerFactory, terms: NormTerms) -> None:
        """Place normalisers made by ``make(features, role)`` inside the step: with
        ``terms="summed"`` one ``"summed"`` per gate, with ``"separate"`` an ``"input"`` and a
        ``"hidden"`` one, and (LSTM) a ``"cell"`` one in both. A cell with normalisers has no
        fused path."""
        raise NotImplementedError(f"{type(self).__name__} does not support normalize")


class CellWrapper(Cell):
    """A cell around another cell (residual, gating, ...). No fused path: the wrapper must run."""

    def __init__(self, inner: Cell) -> None:
        super().__init__(inner.input_size, inner.hidden_size, inner.params)
        self.inner = inner

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        return self.inner.init_state(batch, device, dtype)

    def project_inputs(self, x: Tensor) -> Tensor:
        return self.inner.project_inputs(x)

    def step(self, u_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        return self.inner.step(u_t, state, t)

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        return self.step(self.project_inputs(x_t), state, 0)

    def recurrent_weight(self) -> Tensor | None:
        return self.inner.recurrent_weight()

    def input_weight(self) -> Tensor | None:
        return self.inner.input_weight()

    def constrain(self) -> None:
        self.inner.constrain()


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
    """The loss of a trivial predictor, if the task has a well-known one."""

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

    def apply_model(self, model: SequenceModel) -> None:
        """Change the model as a whole; register modules of the remedy's own here with
        ``model.add_module(name, module)`` (the batch-norm between IndRNN layers)."""

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

        :param grad_norm: the global gradient norm before any remedy touched the gradients.
        """
        return {}
