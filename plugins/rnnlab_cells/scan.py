"""A parallel scan of the linear recurrence h_t = a_t * h_{t-1} + b_t, in plain torch.

The fused paths of ``lru``, ``mingru`` and ``minlstm`` run on :func:`chunked_scan` (torch's own
``associative_scan`` is a prototype in torch 2.13, so it is not used). The sequence is cut into
chunks of ``chunk`` steps; one pass of ``chunk`` element-wise steps runs every chunk at once from
a zero state (``[T / chunk, B, H]`` per operation), keeping also the running product of ``a``;
:func:`doubling_scan` then carries the state across the ``T / chunk`` chunk ends, and each
chunk's outputs get the state it started from times that running product. Work and memory
are linear in T (as the step-by-step loop's), the sequential depth is ``chunk + log2(T /
chunk)`` operations instead of T, and the arithmetic is the loop's own (products and sums in
the same order within a chunk), so it matches the loop to float rounding at any T, for any
signs, real or complex.

Measured on this repository's 2-core CPU (one thread, B = 16, H = 32, forward + backward of a
gated recurrence; figures in tests/test_modern_cells.py's module docstring): at T = 2048 the
chunked scan took 42 ms (chunk 16), 52 ms (32), 57 ms (64); Heinsen's log-space scan
(``exp(a* + logcumsumexp(log b - a*))``, the minGRU paper's) 200 ms, torch's CPU
``logcumsumexp`` being most of it; a plain doubling scan over all T steps 150 ms, with memory
~ T log T. The log-space form also cancels two numbers of size ``sum_t log a_t``, which grows
with T (relative error ~ T |log a| 2^-24 in float32).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

CHUNK = 16
"""Steps per chunk: the fastest of 16, 32 and 64 at T = 256, 2048 and 8192 (module docstring)."""


def doubling_scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """Every ``h_t = a_t * h_{t-1} + b_t`` (``t = 0..T-1``) from ``h_{-1} = h0`` by Hillis &
    Steele's prefix doubling: ``ceil(log2 T)`` rounds over the whole sequence.

    ``a`` is ``[T, ...]`` and broadcasts against ``b`` (``[T, 1, N]`` against ``[T, B, N]`` for
    a coefficient shared by the batch); ``h0`` broadcasts against one step of ``b``.
    """
    b = torch.cat([b[:1] + a[:1] * h0, b[1:]])  # fold h0 into the first step
    steps = b.shape[0]
    offset = 1
    while offset < steps:
        # element t absorbs the block that ends at t - offset: (a, b) <- (a a', a b' + b)
        b = torch.cat([b[:offset], b[offset:] + a[offset:] * b[:-offset]])
        if 2 * offset < steps:
            a = torch.cat([a[:offset], a[offset:] * a[:-offset]])
        offset *= 2
    return b


def chunked_scan(a: Tensor, b: Tensor, h0: Tensor, chunk: int = CHUNK) -> Tensor:
    """Every ``h_t = a_t * h_{t-1} + b_t`` (``t = 0..T-1``) from ``h_{-1} = h0``.

    Args:
        a: ``[T, ...]``, or ``[1, ...]`` for a coefficient constant in time (the LRU's
            Lambda); broadcasts against one step of ``b``.
        b: ``[T, ...]``.
        h0: broadcasts against one step of ``b``; any sign.
        chunk: steps per chunk.

    Returns:
        ``[T, *b.shape[1:]]``: h_0 ... h_{T-1}.
    """
    steps = b.shape[0]
    length = min(chunk, steps)
    count = math.ceil(steps / length)
    pad = count * length - steps  # padded steps come last and reach no real output
    constant = a.shape[0] == 1
    if pad:
        b = torch.cat([b, b.new_zeros((pad, *b.shape[1:]))])
        if not constant:
            a = torch.cat([a, a.new_ones((pad, *a.shape[1:]))])
    # unbind, never bc[:, j]: indexing's backward writes a zero tensor of the whole sequence
    # per step (72 of 186 ms at T = 2000 in torch's profiler)
    bs = b.reshape(count, length, *b.shape[1:]).unbind(1)
    as_ = [a] * length if constant else list(a.reshape(count, length, *a.shape[1:]).unbind(1))
    h: Tensor | None = None
    decay: Tensor | None = None
    states: list[Tensor] = []
    decays: list[Tensor] = []
    for a_j, b_j in zip(as_, bs, strict=True):  # every chunk at once, each from a zero state
        h = b_j if h is None else a_j * h + b_j
        decay = a_j if decay is None else a_j * decay  # prod of a over the chunk up to j
        states.append(h)
        decays.append(decay)
    local = torch.stack(states, 1)
    running = torch.stack(decays, 1)
    carry = running[:, -1].expand(count, *running.shape[2:])  # a over each whole chunk
    ends = doubling_scan(carry, local[:, -1], h0)  # the state after each chunk
    before = torch.cat([h0.expand_as(ends[:1]), ends[:-1]])  # the state each chunk starts from
    out = local + running * before.unsqueeze(1)
    return out.reshape(count * length, *out.shape[2:])[:steps]
