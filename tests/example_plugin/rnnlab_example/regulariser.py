"""Pascanu, Mikolov & Bengio 2013's regulariser: keep the gradient's norm as it flows back."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field
from torch import Tensor

import rnnlab


class NormPreserving(rnnlab.Remedy):
    """Adds ``weight * Omega`` to the loss, where (Pascanu et al. 2013, eq. 9)

        Omega = mean over k and examples of ( ||g_{k+1} dh_{k+1}/dh_k|| / ||g_{k+1}|| - 1 )^2

    with ``g_{k+1} = dL/dh_{k+1}`` taken as a constant. Omega is zero when every step's Jacobian
    keeps the norm of the gradient in the direction the error actually flows, so minimising it
    fights vanishing without constraining the Jacobian in every direction.

    How: ``g`` comes from ``autograd.grad`` on the states the model kept (``needs_states``); each
    step is recomputed from a detached ``h_k`` (a cell's other state, such as an LSTM's ``c``,
    held constant) and the vector-Jacobian products are taken with ``create_graph=True`` so that
    Omega's own gradient reaches the weights. Examples whose ``g_{k+1}`` has underflowed to zero
    have no direction and are left out. The paper sums over k; the mean used here keeps one
    ``weight`` meaningful across sequence lengths (the paper's alpha ~ weight / T). Every layer of a
    stack is regularised.
    """

    class Params(rnnlab.Params):
        weight: float = Field(1.0, ge=0, description="the weight of Omega in the loss")

    params: Params
    needs_states = True

    def loss_term(
        self, loss: Tensor, traces: Sequence[rnnlab.LayerTrace]
    ) -> tuple[Tensor, dict[str, float]] | None:
        hidden = [h for trace in traces for h in trace.hidden]
        if not hidden:
            return None
        grads = torch.autograd.grad(loss, hidden, retain_graph=True, allow_unused=True)
        outputs: list[Tensor] = []
        inputs: list[Tensor] = []
        directions: list[Tensor] = []
        live: list[Tensor] = []
        offset = 0
        for trace in traces:
            steps = len(trace.hidden)
            for k in range(steps - 1):
                g = grads[offset + k + 1]
                if g is None:  # the loss does not depend on this h at all
                    continue
                norm = g.norm(dim=-1, keepdim=True)
                alive = norm > torch.finfo(g.dtype).tiny
                fed = trace.states[k + 1]  # fed[0] is h_k
                h_k = fed[0].detach().requires_grad_()
                state = (h_k, *(s.detach() for s in fed[1:]))
                h_next, _ = trace.cell.step(trace.inputs[k + 1], state, k + 1)
                outputs.append(h_next)
                inputs.append(h_k)
                directions.append(g / norm.clamp_min(torch.finfo(g.dtype).tiny) * alive)
                live.append(alive.squeeze(-1))
            offset += steps
        if not outputs:
            return None
        vjps = torch.autograd.grad(outputs, inputs, directions, create_graph=True)
        ratios = torch.cat([v.norm(dim=-1)[a] for v, a in zip(vjps, live, strict=True)])
        if ratios.numel() == 0:
            return None
        omega = ((ratios - 1) ** 2).mean()
        weight = float(self.params.weight)
        metrics = {
            "norm_preserving/omega": float(omega.detach()),
            "norm_preserving/ratio": float(ratios.detach().mean()),
        }
        return weight * omega, metrics
