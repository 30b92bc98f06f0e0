"""The dynamics in every run: each layer's Lyapunov spectrum beside the gradient curve.

On ``train.dynamics_every``'s schedule (default: before the first update and after the last;
N: every N updates as well; 0: never), on a fixed batch of :data:`SEQUENCES` validation sequences,
:class:`DynamicsRecorder` measures every layer's Lyapunov spectrum (rnnlab.run._lyapunov, k =
``train.lyapunov_k`` exponents, default min(W, :data:`K_DEFAULT`)) and logs ``dyn/lyapunov_max``,
``dyn/lyapunov_mean`` and ``dyn/lyapunov_min`` (``/layerK`` for a lower layer K); at step 0 it
adds, for every cell with a recurrent weight, the log-singular spectrum of the Jacobian product
ds_T/ds_0 over the whole sequence (Chen, Pennington & Schoenholz 2018's dynamical isometry:
``dyn/isometry_*``) on the first :data:`ISOMETRY_SEQUENCES` of them. Everything lands in
``dynamics.npz`` and ``lyapunov.png`` (rnnlab._names says what each array is).

Layer k's inputs are what its cell saw in training: the batch runs through the model's own
forward with ``traces`` (every layer's projected inputs and first state, the remedies'
``after_layer`` applied between layers, a wrapper cell as the wrapper), in eval mode and under
``torch.no_grad``; each layer's spectrum is then measured on its trace
(:func:`~rnnlab.run.spectrum_along`). Eval mode: per-example Jacobians need examples that do not
interact (batch-norm uses its population statistics) and the measurement changes no state the
training sees: it draws no random numbers (the first frame has its own generator) and puts every
module's training flag back.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from rnnlab._names import (
    DYNAMICS_ARRAYS,
    ISOMETRY_MAX,
    ISOMETRY_MEAN,
    ISOMETRY_MIN,
    LYAPUNOV_MAX,
    LYAPUNOV_MEAN,
    LYAPUNOV_MIN,
    layer_key,
)
from rnnlab.base import LayerTrace
from rnnlab.run._jacobians import evaluating, log_singular_values_along, state_width
from rnnlab.run._lyapunov import Spectrum, spectrum_along
from rnnlab.run._model import SequenceModel

SEQUENCES = 32
"""Validation sequences the spectra are measured on (benchmarks/dynamics.py: 64 doubled the cost
and breaks the 5% budget on an LSTM; the batch mean of 32 is steady to about 0.01)."""
ISOMETRY_SEQUENCES = 8
"""Of them, the ones the Jacobian product's spectrum is taken on (O(T B W^3): an LSTM's W = 2H
made it the dearest part of the measurement on 32)."""
K_DEFAULT = 32
"""``train.lyapunov_k``'s default: min(W, 32) exponents per layer."""


def scheduled(every: int | None, done: int, steps: int) -> bool:
    """Whether the dynamics are measured after ``done`` of ``steps`` updates: at 0 and at the end
    unless ``every`` is 0, and every ``every`` updates when it is set."""
    if every == 0:
        return False
    return done in (0, steps) or (every is not None and done % every == 0)


def layer_spectra(
    model: SequenceModel, x: Tensor, k: int | None
) -> tuple[list[LayerTrace], list[Spectrum]]:
    """Every layer's trace of ``x`` through the model's own forward and its spectrum (k: at
    most this many exponents, default min(W, :data:`K_DEFAULT`)); eval mode, no grad."""
    traces: list[LayerTrace] = []
    spectra = []
    with evaluating(model), torch.no_grad():
        model(x, traces=traces)
        for trace in traces:
            width = state_width(trace.states[0])
            count = min(width, k or K_DEFAULT)
            spectra.append(spectrum_along(trace.cell, trace.inputs, trace.states[0], k=count))
    return traces, spectra


def isometry_spectrum(trace: LayerTrace, sequences: int = ISOMETRY_SEQUENCES) -> np.ndarray | None:
    """The log singular values of ds_T/ds_0 along the trace's first ``sequences`` sequences,
    ``[sequences, W]``; None for a cell without a recurrent weight."""
    if trace.cell.recurrent_weight() is None:
        return None
    inputs = [u[:sequences] for u in trace.inputs]
    state = tuple(s[:sequences] for s in trace.states[0])
    with evaluating(trace.cell), torch.no_grad():
        return log_singular_values_along(trace.cell, inputs, state)


@dataclass
class DynamicsRecorder:
    """The spectra of one run, measured on ``x`` (``[T, B, input_size]``) with ``k`` exponents
    per layer at most (None: min(W, 32)); :meth:`arrays` is ``dynamics.npz``."""

    x: Tensor
    k: int | None = None
    steps: list[int] = field(default_factory=list)
    exponents: list[list[np.ndarray]] = field(default_factory=list)  # [measure][layer] -> [k]
    ftle: list[list[np.ndarray]] = field(default_factory=list)  # [measure][layer] -> [win, k]
    log_det: list[list[float]] = field(default_factory=list)  # NaN where k < W
    widths: list[int] = field(default_factory=list)
    isometry: list[np.ndarray | None] | None = None  # [layer] -> [sequences, W], at step 0
    seconds: float = 0.0  # wall time spent measuring

    def measure(self, model: SequenceModel, step: int) -> dict[str, float]:
        """Measure the model after ``step`` updates: the ``dyn/*`` metrics of every layer (the
        isometry view too at step 0)."""
        started = time.perf_counter()
        try:
            traces, spectra = layer_spectra(model, self.x, self.k)
        except Exception as exc:  # a cell whose step autograd cannot differentiate, say
            raise RuntimeError(
                f"measuring the dynamics after {step} updates failed (train.dynamics_every: 0 "
                f"turns it off): {type(exc).__name__}: {exc}"
            ) from exc
        layers = len(spectra)
        metrics: dict[str, float] = {}
        for layer, spectrum in enumerate(spectra):
            values = spectrum.exponents
            for key, value in (
                (LYAPUNOV_MAX, values.max()),
                (LYAPUNOV_MEAN, values.mean()),
                (LYAPUNOV_MIN, values.min()),
            ):
                metrics[layer_key(key, layer, layers)] = float(value)
        if step == 0:
            self.isometry = [isometry_spectrum(trace) for trace in traces]
            for layer, logs in enumerate(self.isometry):
                if logs is None:
                    continue
                for key, value in (
                    (ISOMETRY_MAX, logs.max(axis=1).mean()),
                    (ISOMETRY_MEAN, logs.mean()),
                    (ISOMETRY_MIN, logs.min(axis=1).mean()),
                ):
                    metrics[layer_key(key, layer, layers)] = float(value)
        self.widths = [state_width(trace.states[0]) for trace in traces]
        self.steps.append(step)
        self.exponents.append([s.exponents for s in spectra])
        self.ftle.append([s.ftle for s in spectra])
        self.log_det.append(
            [math.nan if s.log_det_mean is None else s.log_det_mean for s in spectra]
        )
        self.seconds += time.perf_counter() - started
        return metrics

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of ``dynamics.npz`` (:data:`rnnlab._names.DYNAMICS_ARRAYS`), NaN-padded to
        the widest layer; empty when nothing was measured."""
        if not self.steps:
            return {}
        layers = len(self.widths)
        ks = [len(e) for e in self.exponents[0]]
        top, windows = max(ks), max(f.shape[0] for row in self.ftle for f in row)
        exponents = np.full((len(self.steps), layers, top), np.nan)
        ftle = np.full((len(self.steps), layers, windows, top), np.nan)
        for m, (row, frow) in enumerate(zip(self.exponents, self.ftle, strict=True)):
            for layer, (values, windowed) in enumerate(zip(row, frow, strict=True)):
                exponents[m, layer, : len(values)] = values
                ftle[m, layer, : windowed.shape[0], : windowed.shape[1]] = windowed
        found = [logs for logs in self.isometry or [] if logs is not None]
        sequences = max((logs.shape[0] for logs in found), default=0)
        isometry = np.full((layers, sequences, max(self.widths)), np.nan)
        for layer, logs in enumerate(self.isometry or []):
            if logs is not None:
                isometry[layer, : logs.shape[0], : logs.shape[1]] = logs
        columns: tuple[np.ndarray, ...] = (
            np.asarray(self.steps, dtype=np.int64),
            exponents,
            ftle,
            np.asarray(self.log_det, dtype=np.float64),
            np.asarray(ks, dtype=np.int64),
            np.asarray(self.widths, dtype=np.int64),
            isometry,
        )
        return dict(zip(DYNAMICS_ARRAYS, columns, strict=True))
