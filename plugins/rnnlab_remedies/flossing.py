"""Gradient flossing (Engelken 2023): push the Lyapunov exponents of the forward dynamics to 0.

Exponents near 0 mean the long products of step Jacobians neither shrink nor grow, so gradients
through them neither vanish nor explode. Flossing makes the QR recursion that measures them
differentiable (``torch.linalg.qr`` has a backward) and adds their squared distance to a target to
the loss. The defaults follow the author's code (github.com/RainerEngelken/GradientFlossing,
``GradientFlossing_ExampleCode.jl``): loss ``mean(abs2.(ls .- lstarget))`` with ``Lwnt = 0``; a
QR every step (``nstepONS = 1``); the first ``ceil(Tp / 10)`` steps of the window only align the
frame (``nStepTransientONS``: 6 of Tp = 55; 5 of this remedy's 50 steps, the issue's default;
the code also skips its ``nStepTransient`` = 10 steps before them, which rnnlab's window, taken
from a state the training sequence has already reached, does not need); the frame starts from
``qr(randn(N, nLE))`` with a fixed seed. Its phases of flossing alone: ``Ep`` steps before
training and ``Ei`` steps every ``Ef`` training steps, at most ``Ni`` times, with an Adam of its
own at lr 1e-3 kept across the phases. The README's delayed-XOR call was
``trainRNNflossing(80, 301, 10, 50, 50, 2, 16, ...)`` (E = 301 training steps, Ef = 10, Ei = 50,
Ep = 50, Ni = 2) until June 2023 and is ``(80, 3001, 100, 500, 500, 2, 16, ...)`` since (ten
times longer, the same proportions); ``pre_steps`` = 50 and ``inter_phases`` = 2 are the first.
That example flosses 75 of 80 exponents; the issue's default k = 8 keeps the cost of the term
small (its QR is O(B W k^2) a step) while still acting on the directions that explode or vanish
first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

import rnnlab
from rnnlab import exponents_along

PREFIX = "flossing/"
Batches = Iterator[tuple[Tensor, Tensor]]  # rnnlab.base.Batches: training batches on the device


class GradientFlossing(rnnlab.Remedy):
    """Adds ``weight * mean((lambda_i - target)^2)`` to the loss, over the first ``k`` Lyapunov
    exponents of every layer, per example, then averaged over the batch and the layers.

    How: on every training step, for every layer, the exponents come from the layer's
    :class:`~rnnlab.LayerTrace`: the recursion re-runs the cell from the (detached) state at the
    start of the last ``steps`` time steps over those steps' projected inputs, so the gradient
    reaches the weights through the Jacobians and the trajectory inside the window, as in
    Engelken's code (which differentiates a ``Tp``-step trajectory from a fixed initial state),
    and no further back. In a chaotic network the part through the trajectory explodes and its
    direction is noise from batch to batch (measured in :func:`rnnlab.dynamics.exponents_along`'s
    docstring); ``through_states: false`` drops it and keeps each Jacobian's own dependence on
    the weights, which is all there is to it in a contracting network. Jacobians are the
    cell's analytic ones where it has them, else forward-mode autograd
    (:func:`rnnlab.step_jacobian`).
    ``k`` is capped at the state's width; a sequence shorter than ``steps`` is used whole, its
    warm-up capped to leave one step.

    Where rnnlab differs from Engelken's code, on purpose:

    * besides the code's phases of flossing alone (``pre_steps`` before training, through
      :meth:`rnnlab.Remedy.before_training`; ``inter_steps`` every ``every`` training steps,
      at most ``inter_phases`` times, through :meth:`rnnlab.Remedy.between_steps`; one Adam at
      ``lr`` for all of them, as the code's ``optFlossing``), the term is also added to the
      task's loss on every training step (``weight``, the issue's form); ``weight: 0`` gives
      the code's method alone;
    * a flossing step measures the exponents on a training batch of the task (the remedy's own
      iterator over the train split), where the code flosses one fresh sequence (``B = 1``);
    * the exponents are those of the training batch's sequences (every example, their per-example
      losses averaged), where the code flosses a single sequence (``B = 1``) of fresh inputs;
    * the batch-norm remedy is refused: with batch statistics the examples of a batch are one
      coupled system, with no per-example Jacobian to floss.

    ``weight`` 1 is the code's scale: its flossing loss enters Adam unweighted, at the task's own
    learning rate, so on flossing steps it moves the weights as fast as the task loss does on
    training steps. As a term on every step that dose is larger than the code's occasional
    phases; lower it when the task needs contracting directions (forgetting) that exponents
    pinned at 0 would take away.
    """

    class Params(rnnlab.Params):
        weight: float = Field(1.0, ge=0, description="the term's weight in the loss (0: off)")
        target: float = Field(0.0, description="the value the exponents are pushed toward")
        k: int = Field(8, ge=1, description="how many of the largest exponents (capped at W)")
        steps: int = Field(
            50, ge=2, description="time steps of the training batch, the last ones, measured on"
        )
        warmup: int = Field(5, ge=0, description="of those steps, the first only align the frame")
        qr_every: int = Field(1, ge=1, description="re-orthonormalise every this many steps")
        pre_steps: int = Field(
            50, ge=0, description="preflossing: steps of flossing alone, on training batches, "
            "before training (Engelken's Ep; 0: none)"
        )  # fmt: skip
        every: int = Field(
            0, ge=0, description="interflossing: a phase of flossing alone every this many "
            "training steps (Engelken's Ef; 0: never)"
        )  # fmt: skip
        inter_steps: int = Field(
            0, ge=0, description="steps of each interflossing phase (Engelken's Ei; 0: pre_steps)"
        )
        inter_phases: int = Field(
            2,
            ge=0,
            description="at most this many interflossing phases (Engelken's Ni; 0: no limit)",
        )
        through_states: bool = Field(
            True,
            description="also differentiate through the states the trajectory visits, as "
            "Engelken's code does (false: each step's Jacobian at fixed states, less noisy in "
            "chaotic networks)",
        )
        lr: float = Field(
            1e-3, gt=0, description="the learning rate of preflossing's own Adam (Engelken: 1e-3)"
        )

        @model_validator(mode="after")
        def _warmup_inside_the_window(self) -> GradientFlossing.Params:
            if self.warmup >= self.steps:
                raise ValueError(
                    f"warmup ({self.warmup}) must be less than steps ({self.steps}): it is the "
                    "first part of the window the exponents are measured on"
                )
            if self.every and not (self.inter_steps or self.pre_steps):
                raise ValueError(
                    f"every ({self.every}) asks for interflossing phases of inter_steps steps, "
                    "and inter_steps and pre_steps (its default) are both 0: set inter_steps"
                )
            return self

    params: Params
    needs_states: ClassVar[bool] = True
    conflicts: ClassVar[frozenset[str]] = frozenset({"batchnorm"})

    def __init__(self, params: Params | None = None) -> None:
        super().__init__(params)
        self._optimizer: torch.optim.Optimizer | None = None
        self._phases = 0  # interflossing phases run so far
        if float(self.params.weight) == 0:  # no term: training keeps the fused path
            self.needs_states = False  # type: ignore[misc]

    def before_training(self, model: nn.Module, batches: Batches) -> dict[str, float]:
        """Preflossing: ``pre_steps`` steps of the flossing loss alone (Engelken's ``Ep``)."""
        return self._floss(model, batches, int(self.params.pre_steps), "pre_")

    def between_steps(self, done: int, model: nn.Module, batches: Batches) -> dict[str, float]:
        """Interflossing: ``inter_steps`` steps of it alone after every ``every`` training steps,
        at most ``inter_phases`` times (Engelken's ``Ei``, ``Ef``, ``Ni``)."""
        p = self.params
        every, limit = int(p.every), int(p.inter_phases)
        if not every or done % every or (limit and self._phases >= limit):
            return {}
        self._phases += 1
        return self._floss(model, batches, int(p.inter_steps) or int(p.pre_steps), "inter_")

    def _floss(
        self, model: nn.Module, batches: Batches, steps: int, phase: str
    ) -> dict[str, float]:
        """``steps`` Adam steps (``lr``, one optimizer for every phase) on the flossing loss of
        one training batch each; the loss and lambda_max of the first and the last step."""
        if steps == 0:
            return {}
        assert isinstance(model, rnnlab.SequenceModel)
        if self._optimizer is None:
            self._optimizer = torch.optim.Adam(model.parameters(), lr=float(self.params.lr))
        first: dict[str, float] = {}
        found: dict[str, float] = {}
        for i in range(steps):
            x, _ = next(batches)
            traces: list[rnnlab.LayerTrace] = []
            model(x, traces=traces)
            term, found = self.flossing_loss(traces)
            if not torch.isfinite(term):
                raise FloatingPointError(
                    f"flossing: the {phase}flossing loss became {float(term)} at its step {i} of "
                    f"{steps}; lower lr ({self.params.lr}) or set through_states: false"
                )
            self._optimizer.zero_grad(set_to_none=True)
            term.backward()
            self._optimizer.step()
            model.constrain()
            first = first or found
        loss, top = PREFIX + "loss", PREFIX + "lambda_max"
        return {
            PREFIX + phase + "loss_first": first[loss],
            PREFIX + phase + "loss": found[loss],
            PREFIX + phase + "lambda_max_first": first[top],
            PREFIX + phase + "lambda_max": found[top],
            self.EXTRA_STEPS: float(steps),
        }

    def loss_term(
        self, loss: Tensor, traces: Sequence[rnnlab.LayerTrace]
    ) -> tuple[Tensor, dict[str, float]] | None:
        weight = float(self.params.weight)
        if weight == 0 or not traces:
            return None
        term, metrics = self.flossing_loss(traces)
        return weight * term, metrics

    def flossing_loss(self, traces: Sequence[rnnlab.LayerTrace]) -> tuple[Tensor, dict[str, float]]:
        """``mean((lambda_i - target)^2)`` over the first k exponents, the examples and the
        layers, and its metrics: ``flossing/loss`` and each layer's mean ``lambda_max``."""
        terms = []
        metrics: dict[str, float] = {}
        target = float(self.params.target)
        for layer, trace in enumerate(traces):
            exponents = self.exponents(trace)
            terms.append((exponents - target).square().mean())
            key = PREFIX + "lambda_max" + ("" if layer == len(traces) - 1 else f"/layer{layer}")
            metrics[key] = float(exponents.detach().amax(dim=1).mean())
        term = torch.stack(terms).mean()
        metrics[PREFIX + "loss"] = float(term.detach())
        return term, metrics

    def exponents(self, trace: rnnlab.LayerTrace) -> Tensor:
        """The first k exponents of one layer over the last ``steps`` steps, ``[B, k]``."""
        p = self.params
        window = min(int(p.steps), len(trace.inputs))
        start = len(trace.inputs) - window
        state = tuple(s.detach() for s in trace.states[start])
        width = sum(s[0].numel() for s in state)
        return exponents_along(
            trace.cell,
            trace.inputs[start:],
            state,
            k=min(int(p.k), width),
            warmup=min(int(p.warmup), window - 1),
            qr_every=int(p.qr_every),
            start=start,
            through_states=bool(p.through_states),
        )
