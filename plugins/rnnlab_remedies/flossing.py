"""Gradient flossing (Engelken 2023): push the Lyapunov exponents of the forward dynamics to 0.

Exponents near 0 mean the long products of step Jacobians neither shrink nor grow, so gradients
through them neither vanish nor explode. Flossing makes the QR recursion that measures them
differentiable (``torch.linalg.qr`` has a backward) and adds their squared distance to a target to
the loss. The defaults follow the author's code (github.com/RainerEngelken/GradientFlossing,
``GradientFlossing_ExampleCode.jl`` and the README's delayed-XOR call ``trainRNNflossing(80, 301,
10, 50, 50, 2, 16, 1, 300, 55, 300, ...)``): loss ``mean(abs2.(ls .- lstarget))`` with
``Lwnt = 0``; a QR every step (``nstepONS = 1``); the first ``ceil(Tp / 10)`` steps of the
window only align the frame (``nStepTransientONS``: 6 of Tp = 55; 5 of this remedy's 50 steps,
the issue's default); the frame starts from ``qr(randn(N, nLE))`` with a fixed seed. That example
flosses 75 of 80 exponents; the issue's default k = 8 keeps the cost of the term small (its QR is
O(B W k^2) a step) while still acting on the directions that explode or vanish first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from pydantic import Field, field_validator, model_validator
from torch import Tensor

import rnnlab
from rnnlab import exponents_along

PREFIX = "flossing/"
SEAM = (
    "needs a seam to run optimisation steps before and between training steps "
    "(Remedy.before_training / Remedy.between_steps), which this version of rnnlab lacks; "
    "keep it 0 and use the loss term (weight)"
)


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
    cell's analytic ones where it has them, else forward-mode autograd (:mod:`rnnlab.dynamics`).
    ``k`` is capped at the state's width; a sequence shorter than ``steps`` is used whole, its
    warm-up capped to leave one step.

    Where rnnlab differs from Engelken's code, on purpose:

    * the term is added to the task's loss on every training step (``weight``), where the code
      optimises the flossing loss alone, with its own Adam (lr 1e-3), in phases: 50 steps before
      training ("preflossing", ``Ep``) and 50 steps every 10 epochs, twice ("interflossing",
      ``Ef``, ``Ei``, ``Ni``). ``pre_steps`` and ``every`` declare those phases; they need a
      training seam that rnnlab does not have yet, so they must stay 0 for now;
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
            0, ge=0, description="preflossing: steps of flossing alone before training (needs a "
            "seam rnnlab lacks: must be 0 for now)"
        )  # fmt: skip
        every: int = Field(
            0, ge=0, description="interflossing: pre_steps more steps of flossing alone every "
            "this many training steps (0: never; needs the same seam: must be 0 for now)"
        )  # fmt: skip
        through_states: bool = Field(
            True,
            description="also differentiate through the states the trajectory visits, as "
            "Engelken's code does (false: each step's Jacobian at fixed states, less noisy in "
            "chaotic networks)",
        )
        lr: float = Field(
            1e-3, gt=0, description="the learning rate of preflossing's own Adam (Engelken: 1e-3)"
        )

        @field_validator("pre_steps", "every")
        @classmethod
        def _no_seam_yet(cls, value: int) -> int:
            if value:
                raise ValueError(f"{SEAM} (got {value})")
            return value

        @model_validator(mode="after")
        def _warmup_inside_the_window(self) -> GradientFlossing.Params:
            if self.warmup >= self.steps:
                raise ValueError(
                    f"warmup ({self.warmup}) must be less than steps ({self.steps}): it is the "
                    "first part of the window the exponents are measured on"
                )
            return self

    params: Params
    needs_states: ClassVar[bool] = True
    conflicts: ClassVar[frozenset[str]] = frozenset({"batchnorm"})

    def loss_term(
        self, loss: Tensor, traces: Sequence[rnnlab.LayerTrace]
    ) -> tuple[Tensor, dict[str, float]] | None:
        p = self.params
        weight = float(p.weight)
        if weight == 0 or not traces:
            return None
        terms = []
        metrics: dict[str, float] = {}
        for layer, trace in enumerate(traces):
            exponents = self.exponents(trace)
            target = float(p.target)
            terms.append((exponents - target).square().mean())
            key = PREFIX + "lambda_max" + ("" if layer == len(traces) - 1 else f"/layer{layer}")
            metrics[key] = float(exponents.detach().amax(dim=1).mean())
        term = torch.stack(terms).mean()
        metrics[PREFIX + "loss"] = float(term.detach())
        return weight * term, metrics

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
