"""Step Jacobians of a cell's state map, and the dynamical-isometry view of their product.

A recurrent layer is a map s_t = F(s_{t-1}, x_t) on its full state s (h; an LSTM's (h, c)).
:func:`step_jacobian` gives J_t = ds_t / ds_{t-1} per example; :func:`jacobian_log_singular_values`
the log-singular spectrum of their product over a whole sequence (Chen, Pennington & Schoenholz
2018); rnnlab.run._lyapunov pushes frames through them (the Lyapunov spectrum).

The Jacobian seam. A cell may define ``step_jacobian(u_t, state, t) -> Tensor | None``: the
per-example Jacobian of ``step``'s new state with respect to ``state``, ``[B, W, W]`` with the
state flattened in tuple order (each tensor ``[B, ...]`` flattened, then concatenated: an LSTM's
rows and columns are h's units, then c's). ``J[b, i, j] = d s_t[b, i] / d s_{t-1}[b, j]``.
Returning None means "use autograd" (the built-in cells do when normalisers are set). Every
other cell, including third-party cells and remedy wrappers (residual, gating), gets its
Jacobian by forward-mode autograd through its own ``step``: ``torch.func.jvp`` on Q's k columns
at once under ``torch.func.vmap`` (k Jacobian-vector products: the cost of pushing Q is that of
k tangent steps, against W for building J), and the whole J from the W identity columns when
k is the full width, where log|det J_t| is needed too. Forward mode rather than ``jacrev``
because what the recursion needs is J Q, columns, which forward mode gives directly. A cell
whose step cannot run under vmap falls back to one ``jvp`` per column. An analytic
``step_jacobian`` is used only when it is defined on the class that defines ``step`` or below
it: a subclass that overrides ``step`` alone gets autograd, never a stale formula.

Per-example Jacobians need a step in which examples do not interact: batch-norm with batch
statistics couples them. The measurements therefore run the cell in eval mode (population
statistics; dropout off) and under ``torch.no_grad``, and put every submodule's training flag
back afterwards (:func:`evaluating`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from rnnlab.base import Cell, State

__all__ = [
    "evaluating",
    "flatten_state",
    "jacobian_log_singular_values",
    "log_singular_values_along",
    "state_width",
    "step_jacobian",
]

JacobianMethod = Callable[[Tensor, State, int], "Tensor | None"]
"""The seam's signature: ``step_jacobian(u_t, state, t) -> [B, W, W]`` or None (use autograd)."""

_NO_VMAP: set[type] = set()
"""Cell classes whose step failed under ``torch.func.vmap``: one ``jvp`` per column for them."""


# --- the state, flattened ---------------------------------------------------------------------


def flatten_state(state: State) -> Tensor:
    """``[B, W]``: every tensor of ``state`` flattened per example, concatenated in tuple order."""
    return torch.cat([s.reshape(s.shape[0], -1) for s in state], dim=-1)


def state_width(state: State) -> int:
    """W: the number of values per example in ``state`` (an LSTM's (h, c): 2H)."""
    return sum(math.prod(s.shape[1:]) for s in state)


def _unflatten(flat: Tensor, like: State) -> State:
    sizes = [math.prod(s.shape[1:]) for s in like]
    parts = flat.split(sizes, dim=-1)
    return tuple(p.reshape(s.shape) for p, s in zip(parts, like, strict=True))


# --- step Jacobians ---------------------------------------------------------------------------


def _defined_on(cls: type, name: str) -> type | None:
    return next((k for k in cls.__mro__ if name in vars(k)), None)


def analytic_jacobian(cell: Cell) -> JacobianMethod | None:
    """The cell's own ``step_jacobian`` where it can be trusted: defined on the class that
    defines ``step`` or on a subclass of it."""
    owner = _defined_on(type(cell), "step_jacobian")
    if owner is None or not issubclass(owner, _defined_on(type(cell), "step") or Cell):
        return None
    return cast(JacobianMethod, cell.step_jacobian)  # nn.Module types it Tensor | Module


def tangents(cell: Cell, u_t: Tensor, state: State, t: int, columns: Tensor) -> Tensor:
    """``J_t v`` for every column v of ``columns`` ``[B, W, k]`` by forward-mode autograd
    through ``cell.step``: ``[B, W, k]``."""
    flat = flatten_state(state)

    def step(s: Tensor) -> Tensor:
        return flatten_state(cell.step(u_t, _unflatten(s, state), t)[1])

    def push(v: Tensor) -> Tensor:
        out: Tensor = torch.func.jvp(step, (flat,), (v,))[1]
        return out

    vs = columns.movedim(-1, 0)  # [k, B, W]
    if type(cell) not in _NO_VMAP:
        try:
            return torch.func.vmap(push)(vs).movedim(0, -1)
        except (RuntimeError, NotImplementedError):  # an op without a batching rule
            _NO_VMAP.add(type(cell))
    return torch.stack([push(v) for v in vs], dim=-1)


def step_jacobian(cell: Cell, u_t: Tensor, state: State, t: int, *, method: str = "auto") -> Tensor:
    """The per-example Jacobian of one step, ``[B, W, W]`` (see the module's Jacobian seam).

    Args:
        cell: any cell.
        u_t: the projected input of step t (``cell.project_inputs(x)[t]``).
        state: the state fed to step t.
        t: the time index (batch-norm keeps statistics per step).
        method: ``"auto"`` (the cell's analytic ``step_jacobian`` when it has one that applies,
            else autograd), ``"analytic"`` (raise if there is none) or ``"autograd"``.

    Example:
        >>> import torch
        >>> from rnnlab_cells.twins import ElmanCell
        >>> cell = ElmanCell(2, 4)
        >>> state = cell.init_state(3)
        >>> step_jacobian(cell, cell.project_inputs(torch.randn(3, 2)), state, 0).shape
        torch.Size([3, 4, 4])
    """
    if method not in ("auto", "analytic", "autograd"):
        raise ValueError(f"method: expected 'auto', 'analytic' or 'autograd', got {method!r}")
    width = state_width(state)
    if method != "autograd":
        analytic = analytic_jacobian(cell)
        jac = analytic(u_t, state, t) if analytic is not None else None
        if jac is not None:
            return checked_jacobian(cell, jac, state[0].shape[0], width)
        if method == "analytic":
            raise ValueError(
                f"method='analytic': {type(cell).__name__} has no analytic step_jacobian "
                "that applies (none defined, or it returned None, e.g. with normalisers set)"
            )
    eye = torch.eye(width, dtype=state[0].dtype, device=state[0].device)
    return tangents(cell, u_t, state, t, eye.expand(state[0].shape[0], width, width))


def checked_jacobian(cell: Cell, jac: Tensor, batch: int, width: int) -> Tensor:
    """``jac`` when it has the seam's shape ``[batch, width, width]``; else a ValueError."""
    if jac.shape != (batch, width, width):
        raise ValueError(
            f"{type(cell).__name__}.step_jacobian: expected shape [{batch}, {width}, {width}] "
            f"(batch, state width, state width), got {list(jac.shape)}"
        )
    return jac


# --- what every measurement shares ------------------------------------------------------------


@contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode (population statistics, no dropout) for the duration; every submodule's own
    training flag restored afterwards."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def checked_inputs(cell: Cell, inputs: Tensor, state: State | None) -> State:
    """The state to start from (``cell.init_state`` by default) once ``inputs`` is
    ``[T, B, input_size]`` and ``state`` has its batch; else a ValueError saying which."""
    if inputs.dim() != 3 or inputs.shape[-1] != cell.input_size:
        raise ValueError(
            f"inputs: expected [T, B, input_size={cell.input_size}] (time-major, the cell's raw "
            f"inputs), got shape {list(inputs.shape)}"
        )
    batch = inputs.shape[1]
    if state is None:
        return cell.init_state(batch, inputs.device, inputs.dtype)
    if not state or any(s.dim() < 2 or s.shape[0] != batch for s in state):
        shapes = [list(s.shape) for s in state]
        raise ValueError(f"state: expected tensors [B={batch}, ...], got shapes {shapes}")
    return state


# --- the dynamical-isometry view ----------------------------------------------------------------


def jacobian_log_singular_values(
    cell: Cell, inputs: Tensor, *, state: State | None = None
) -> np.ndarray:
    """log of the singular values of ds_T/ds_0 = J_T ... J_1 over the whole sequence, ``[B, W]``.

    The dynamical-isometry view (Chen, Pennington & Schoenholz 2018; there is no official code):
    singular values near 1 (logs near 0) let signals and gradients through all T steps. The
    product is accumulated in float64, rescaled every step by its largest entry (the scale kept
    as a log), so it neither overflows nor underflows. Its SVD resolves a singular value only
    down to W eps (float64) times the largest, about 34 nats below the first value at W = 32
    (an SVD's error is that of the largest value): a smaller one is reported at that floor,
    log(sigma_max) + log(W eps), and means "at most about this". Not divided by T: ``values / T``
    are finite-time exponents, which :func:`rnnlab.run.lyapunov_spectrum` measures without the
    floor. Eval mode and ``torch.no_grad``; cost O(T B W^3), meant for initialisation.

    Example:
        >>> import torch
        >>> from rnnlab_cells.twins import ElmanCell
        >>> cell = ElmanCell(1, 8)
        >>> jacobian_log_singular_values(cell, torch.randn(20, 2, 1)).shape
        (2, 8)
    """
    state = checked_inputs(cell, inputs, state)
    with evaluating(cell), torch.no_grad():
        return log_singular_values_along(cell, cell.project_inputs(inputs).unbind(0), state)


def log_singular_values_along(
    cell: Cell, inputs: Sequence[Tensor], state: State, start: int = 0
) -> np.ndarray:
    """:func:`jacobian_log_singular_values` on projected ``inputs`` (a
    :class:`~rnnlab.base.LayerTrace`'s) from ``state``, in the cell's current mode: ``[B, W]``."""
    batch, width = state[0].shape[0], state_width(state)
    device = state[0].device
    product = torch.eye(width, dtype=torch.float64, device=device).repeat(batch, 1, 1)
    scale = torch.zeros(batch, 1, dtype=torch.float64, device=device)
    for i, u_t in enumerate(inputs):
        jac = step_jacobian(cell, u_t, state, start + i)
        state = cell.step(u_t, state, start + i)[1]
        product = jac.double() @ product
        top = product.abs().amax(dim=(1, 2)).clamp(min=torch.finfo(torch.float64).tiny)
        product = product / top[:, None, None]
        scale = scale + top.log()[:, None]
    values = torch.linalg.svdvals(product)
    floor = values[:, :1] * (width * torch.finfo(torch.float64).eps)  # below it: rounding error
    return (values.maximum(floor).log() + scale).cpu().numpy()
