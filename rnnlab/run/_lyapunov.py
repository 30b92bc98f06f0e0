"""Lyapunov spectra of a cell's state map: the QR recursion, measured and differentiable.

A recurrent layer is a map s_t = F(s_{t-1}, x_t) on its full state s (h; an LSTM's (h, c)). The
exponents of the products of its step Jacobians J_t = ds_t / ds_{t-1} along a trajectory say why
a gradient vanished (every exponent negative: contracting dynamics) or exploded (the largest
positive: chaos). :func:`lyapunov_spectrum` measures them on any :class:`~rnnlab.base.Cell`;
:func:`spectrum_along` does the same on a layer's projected inputs (what the model fed its
cell); :func:`exponents_along` is the differentiable recursion that the ``flossing`` remedy
optimises.

The algorithm (Engelken, Wolf & Abbott 2020, "Lyapunov spectra of chaotic recurrent neural
networks"; Vogt et al.'s lyapunov-hyperopt for torch, github.com/shlizee/lyapunov-hyperopt,
``lyapunov.py``): evolve an orthonormal frame Q (width x k) by Q <- J_t Q; every ``qr_every``
steps factor Q = Q'R, flip signs so that diag R > 0, keep Q' and add log diag R to the sums; the
exponents are the sums over the steps accumulated. Where rnnlab differs from lyapunov-hyperopt,
on purpose:

* natural logarithms per time step (lyapunov-hyperopt sums ``log2``: bits per step);
* the full state: an LSTM's exponents are those of (h, c), width 2H (lyapunov-hyperopt's
  ``lstm_jac`` is dh_t/dh_{t-1} with c held fixed, width H);
* one layer at a time (lyapunov-hyperopt's Jacobian couples the layers of a stack);
* the first frame is a random orthonormal one from a fixed seed, as in Engelken's code
  (``qr(randn(N, nLE))``), not the first k columns of the identity: a diagonal Jacobian
  (IndRNN) keeps coordinate axes invariant, so an identity start with k < width would only ever
  see the first k units;
* a final QR closes a window cut short by the end of the sequence (as Engelken's code does), and
  the sums are divided by the steps accumulated (lyapunov-hyperopt divides by the sequence length
  including its warm-up).

The step Jacobians come from rnnlab.run._jacobians (the cell's analytic ``step_jacobian`` where
it has one that applies, else forward-mode autograd through its own ``step``).

Example:
    >>> import torch
    >>> from rnnlab_cells.twins import ElmanCell
    >>> cell = ElmanCell(2, 16)
    >>> spectrum = lyapunov_spectrum(cell, torch.randn(100, 8, 2), warmup=20)
    >>> spectrum.exponents.shape, spectrum.steps
    ((16,), 80)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnlab.base import Cell, State
from rnnlab.run._jacobians import (
    analytic_jacobian,
    checked_inputs,
    checked_jacobian,
    evaluating,
    state_width,
    step_jacobian,
    tangents,
)

__all__ = ["Spectrum", "exponents_along", "lyapunov_spectrum", "spectrum_along"]

FRAME_SEED = 0
"""Seed of the random orthonormal first frame (the same frame on every call, as Engelken's code
reseeds it on every call)."""


@dataclass(frozen=True)
class Spectrum:
    """A Lyapunov spectrum along a batch of sequences (natural log per time step).

    Attributes:
        exponents: ``[k]``, descending: the batch mean of :attr:`per_example`.
        per_example: ``[B, k]``, each row descending.
        ftle: ``[windows, k]``: the finite-time exponents of every QR window after the warm-up
            (log diag R over the window's length, batch mean), in the frame's column order, so
            that the length-weighted mean of the windows is the spectrum.
        log_det_mean: the time mean of log|det J_t| over the accumulated steps (batch mean)
            when k is the full width, else None; the exponents sum to it.
        steps: the time steps accumulated (the sequence length less the warm-up).
    """

    exponents: np.ndarray
    per_example: np.ndarray
    ftle: np.ndarray
    log_det_mean: float | None
    steps: int


def _advance(
    cell: Cell, u_t: Tensor, state: State, t: int, frame: Tensor, full: bool
) -> tuple[State, Tensor, Tensor | None]:
    """One step: the new state, ``J_t @ frame`` and, when ``full``, log|det J_t| ``[B]``."""
    new = cell.step(u_t, state, t)[1]
    analytic = analytic_jacobian(cell)
    jac = analytic(u_t, state, t) if analytic is not None else None
    if jac is None and full:  # the whole J: W tangents, as many as the frame's columns
        jac = step_jacobian(cell, u_t, state, t, method="autograd")
    if jac is None:
        return new, tangents(cell, u_t, state, t, frame), None
    jac = checked_jacobian(cell, jac, frame.shape[0], frame.shape[1])
    logdet = torch.linalg.slogdet(jac)[1] if full else None
    return new, jac @ frame, logdet


# --- the QR recursion -------------------------------------------------------------------------


def _first_frame(batch: int, width: int, k: int, like: Tensor) -> Tensor:
    generator = torch.Generator().manual_seed(FRAME_SEED)
    gauss = torch.randn(width, k, generator=generator, dtype=torch.float64)
    frame = torch.linalg.qr(gauss)[0].to(dtype=like.dtype, device=like.device)
    return frame.expand(batch, width, k).contiguous()


def _orthonormalise(pushed: Tensor) -> tuple[Tensor, Tensor]:
    """QR with the signs fixed: the new frame and diag R > 0 (``[B, k]``)."""
    q, r = torch.linalg.qr(pushed)
    diag = r.diagonal(dim1=-2, dim2=-1)
    signs = torch.where(diag < 0, -1.0, 1.0).to(diag.dtype)
    return q * signs.unsqueeze(-2), diag * signs


@dataclass
class _Sums:
    logs: Tensor  # [B, k]: sum of log diag R after the warm-up
    windows: list[Tensor]  # each [B, k]: one window's finite-time exponents
    logdet: Tensor | None  # [B]: sum of log|det J_t| after the warm-up
    steps: int


def _recursion(
    cell: Cell,
    inputs: Sequence[Tensor],
    state: State,
    k: int,
    qr_every: int,
    warmup: int,
    full: bool,
    first: int = 0,
    through_states: bool = True,
) -> _Sums:
    """The QR recursion over projected ``inputs`` (steps ``first``, ``first + 1``, ...) from
    ``state``; differentiable when grad is enabled (``torch.linalg.qr`` has a backward), through
    the visited states too unless ``through_states`` is false."""
    batch, width = state[0].shape[0], state_width(state)
    frame = _first_frame(batch, width, k, state[0])
    logs = frame.new_zeros(batch, k)
    logdet = frame.new_zeros(batch) if full else None
    windows: list[Tensor] = []
    since = steps = 0
    last = len(inputs) - 1
    for i, u_t in enumerate(inputs):
        state, pushed, step_logdet = _advance(cell, u_t, state, first + i, frame, full)
        if not through_states:
            state = tuple(s.detach() for s in state)
        since += 1
        if i >= warmup and logdet is not None and step_logdet is not None:
            logdet = logdet + step_logdet
        if since < qr_every and i != last and i != warmup - 1:
            frame = pushed  # not yet: Q <- J_t Q, orthonormalised at the window's end
            continue
        frame, diag = _orthonormalise(pushed)
        if i >= warmup:  # the warm-up ends with a QR at i = warmup - 1, so windows start clean
            # a direction the step annihilates (J v = 0: every ReLU unit off) is floored at
            # the dtype's smallest normal, log 1.2e-38 = -87 nats in float32, not -inf
            window = diag.clamp(min=torch.finfo(diag.dtype).tiny).log()
            logs = logs + window
            windows.append(window / since)
            steps += since
        since = 0
    return _Sums(logs, windows, logdet, steps)


def lyapunov_spectrum(
    cell: Cell,
    inputs: Tensor,
    *,
    state: State | None = None,
    k: int | None = None,
    qr_every: int = 1,
    warmup: int = 0,
) -> Spectrum:
    """The Lyapunov spectrum of ``cell``'s state map along ``inputs``.

    Runs the cell over the sequence as the model does (``project_inputs``, then ``step`` per
    time step), pushes an orthonormal frame of k directions through each step Jacobian and
    re-orthonormalises it every ``qr_every`` steps (the module docstring gives the algorithm and
    where it differs from Engelken et al.'s and Vogt et al.'s code). In eval mode and under
    ``torch.no_grad``; the training flags are restored.

    Cost per step: the step, its Jacobian (analytic for the built-in cells: O(B W^2) to form;
    else k forward-mode products, each about a step) and ``J @ Q`` (O(B W^2 k)), a QR of
    O(B W k^2) every ``qr_every`` steps. ``benchmarks/dynamics.py`` measures it.

    Args:
        cell: any cell (built-in, third-party, or a remedy's wrapper).
        inputs: ``[T, B, input_size]``, the cell's raw inputs.
        state: the state fed to the first step (default ``cell.init_state``).
        k: how many exponents (default: all, the state's full width W).
        qr_every: re-orthonormalise every this many steps (between QRs, the frame's columns
            grow or shrink like the exponents: keep it small where they are far from 0).
        warmup: steps run (and orthonormalised) before anything is accumulated: the trajectory's
            and the frame's transients.

    Returns:
        A :class:`Spectrum`. A direction that a step annihilates (a ReLU unit switched off, with
        k = W) gives an exponent at rounding level, about log(eps) per step or below, and never
        below log of the dtype's smallest normal (-87.3 per step in float32): a step whose
        Jacobian maps the direction to exactly 0 is counted at that floor, not as -inf.

    Raises:
        ValueError: inputs not ``[T, B, input_size]``; ``k`` outside 1..W; ``qr_every`` < 1;
            ``warmup`` < 0 or not below T; a ``state`` of the wrong batch.

    Example:
        >>> import torch
        >>> from rnnlab_cells.twins import LSTMCell
        >>> spectrum = lyapunov_spectrum(LSTMCell(3, 8), torch.randn(50, 4, 3), warmup=10)
        >>> spectrum.exponents.shape, spectrum.steps  # k = W = 2H: h's and c's directions
        ((16,), 40)
        >>> bool(abs(spectrum.exponents.sum() - spectrum.log_det_mean) < 1e-3)  # float32
        True
    """
    state = checked_inputs(cell, inputs, state)
    with evaluating(cell), torch.no_grad():
        projected = cell.project_inputs(inputs).unbind(0)
        return spectrum_along(cell, projected, state, k=k, qr_every=qr_every, warmup=warmup)


def spectrum_along(
    cell: Cell,
    inputs: Sequence[Tensor],
    state: State,
    *,
    k: int | None = None,
    qr_every: int = 1,
    warmup: int = 0,
    start: int = 0,
) -> Spectrum:
    """:func:`lyapunov_spectrum` on projected ``inputs`` from ``state``, in the cell's current
    mode and grad setting: what a run measures on each layer's
    :class:`~rnnlab.base.LayerTrace` (``inputs``, ``states[0]``), which holds what the model's
    own forward fed the cell (a lower layer's outputs, the remedies' ``after_layer`` applied).

    Args:
        cell: any cell.
        inputs: the projected inputs of the steps, ``[B, *]`` each.
        state: the state fed to the first of them.
        k, qr_every, warmup: as for :func:`lyapunov_spectrum`.
        start: the time index of the first input (what ``step`` is told).
    """
    steps = len(inputs)
    width = state_width(state)
    k = width if k is None else k
    if not 1 <= k <= width:
        raise ValueError(f"k: expected 1 <= k <= {width} (the state's full width), got {k}")
    if qr_every < 1:
        raise ValueError(f"qr_every: expected an integer >= 1, got {qr_every}")
    if not 0 <= warmup < steps:
        raise ValueError(
            f"warmup: expected 0 <= warmup < T={steps} (the inputs' length), got {warmup}"
        )
    sums = _recursion(cell, inputs, state, k, qr_every, warmup, k == width, start)
    per_example = (sums.logs / sums.steps).detach().double().cpu().numpy()
    per_example = -np.sort(-per_example, axis=1)
    ftle = torch.stack(sums.windows).mean(dim=1).detach().double().cpu().numpy()
    log_det = (
        None if sums.logdet is None else float(sums.logdet.detach().double().mean()) / sums.steps
    )
    return Spectrum(per_example.mean(axis=0), per_example, ftle, log_det, sums.steps)


def exponents_along(
    cell: Cell,
    inputs: Sequence[Tensor],
    state: State,
    *,
    k: int,
    warmup: int = 0,
    qr_every: int = 1,
    start: int = 0,
    through_states: bool = True,
) -> Tensor:
    """The first ``k`` exponents per example, ``[B, k]``, differentiable (gradient flossing).

    The recursion of :func:`lyapunov_spectrum` with gradients on, in the cell's current mode:
    ``torch.linalg.qr`` has a backward, so the exponents' gradient reaches the weights through
    each J_t's own dependence on them and, with ``through_states``, through the states the
    trajectory visits (as Engelken's Julia code differentiates it). The columns are in the
    frame's order (about descending). Per-example only when examples do not interact in
    ``step`` (not batch-norm in training).

    The part through the states is the gradient of a trajectory, and explodes where the
    dynamics are chaotic: on a tanh rnn with W_hh ~ N(0, 4/H), H = 64 (lambda_max 0.12), the
    gradient of the mean of 4 exponents over 35 steps had norms 16 to 75 with it and 0.25
    without, and the directions from 6 batches of 8 sequences had a mean pairwise cosine of 0.00
    with it (noise) and 0.06 without; on a contracting one (W_hh ~ N(0, 0.25/H)) the two agreed
    (cosine 0.998, the same norms).

    Args:
        cell: any cell.
        inputs: the projected inputs of the steps, ``[B, *]`` each (a
            :class:`~rnnlab.base.LayerTrace`'s ``inputs`` from some t0 on).
        state: the state fed to the first of them (``trace.states[t0]``; detach it to keep the
            gradient inside the window).
        k: how many exponents, 1..W.
        warmup: the first steps only align the frame.
        qr_every: re-orthonormalise every this many steps.
        start: the time index of the first input (t0: what ``step`` is told).
        through_states: differentiate through the visited states too (else every state the
            recursion reaches is detached: each J_t is differentiated at a fixed state).

    Example:
        >>> import torch
        >>> from rnnlab_cells.twins import ElmanCell
        >>> cell = ElmanCell(2, 8)
        >>> us = cell.project_inputs(torch.randn(30, 4, 2)).unbind(0)
        >>> exponents_along(cell, us, cell.init_state(4), k=3, warmup=5).shape
        torch.Size([4, 3])
    """
    width = state_width(state)
    if not 1 <= k <= width:
        raise ValueError(f"k: expected 1 <= k <= {width} (the state's full width), got {k}")
    if not 0 <= warmup < len(inputs):
        raise ValueError(
            f"warmup: expected 0 <= warmup < {len(inputs)} (the number of inputs), got {warmup}"
        )
    if qr_every < 1:
        raise ValueError(f"qr_every: expected an integer >= 1, got {qr_every}")
    sums = _recursion(cell, inputs, state, k, qr_every, warmup, False, start, through_states)
    return sums.logs / sums.steps
