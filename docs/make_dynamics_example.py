"""docs/dynamics.md's worked example: three tanh RNNs' Lyapunov spectra and gradient curves.

``python docs/make_dynamics_example.py`` (about 10 s on a CPU) draws docs/dynamics-example.png
and prints the table that docs/dynamics.md quotes: a tanh rnn (hidden 64) on the adding
problem's inputs, its W_hh drawn N(0, g^2 / H) with gain g = 0.5 (contracting), 1.0 (the edge of
chaos) and 2.0 (chaotic), each measured at initialisation with ``rnnlab.lyapunov_spectrum`` (k =
all 64, 20 steps of warm-up) and with the gradient of its last state's sum with respect to
every h_t, ||dL/dh_t||, which the exponents predict: over T - t steps it scales like
exp(lambda_max (T - t)) where the dynamics contract.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
OUT = HERE / "dynamics-example.png"
GAINS = (0.5, 1.0, 2.0)
HIDDEN, STEPS, WARMUP, SEQUENCES = 64, 120, 20, 16


def cell_with_gain(gain: float) -> torch.nn.Module:
    from rnnlab_cells.twins import ElmanCell

    torch.manual_seed(0)
    cell = ElmanCell(2, HIDDEN)
    with torch.no_grad():
        cell.weight_hh.normal_(0.0, gain / math.sqrt(HIDDEN))
    return cell


def gradient_curve(cell: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """||d(sum h_T)/dh_t|| for every t (batch mean): the gradient curve rnnlab probes."""
    from rnnlab.run import run_loop

    probe = torch.zeros(x.shape[0], x.shape[1], HIDDEN, requires_grad=True)
    hs = run_loop(cell, x, cell.init_state(x.shape[1]), probe)
    hs[-1].sum().backward()
    assert probe.grad is not None
    return probe.grad.norm(dim=-1).mean(dim=1).numpy()


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rnnlab_tasks.adding import AddingProblem

    import rnnlab

    task = AddingProblem(AddingProblem.Params(seq_len=STEPS, val_size=SEQUENCES))
    x = next(task.batches("val", SEQUENCES))[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = ("#0072B2", "#009E73", "#D55E00")
    header = "| gain | lambda max | lambda mean | sum = mean log|det J| | growth of ||dL/dh_t|| |"
    print(header)
    print("|---|---|---|---|---|")
    for gain, colour in zip(GAINS, colours, strict=True):
        cell = cell_with_gain(gain)
        spectrum = rnnlab.lyapunov_spectrum(cell, x, warmup=WARMUP)
        curve = gradient_curve(cell, x)
        t = np.arange(1, STEPS + 1)
        late = slice(STEPS // 2, STEPS - 1)  # away from both ends: the asymptotic rate
        slope = -np.polyfit(t[late], np.log(np.maximum(curve[late], 1e-38)), 1)[0]
        print(
            f"| {gain} | {spectrum.exponents[0]:+.3f} | {spectrum.exponents.mean():+.3f} | "
            f"{spectrum.exponents.sum():+.2f} = {spectrum.log_det_mean:+.2f} | "
            f"{slope:+.3f} per step back |"
        )
        label = f"gain {gain}: lambda max {spectrum.exponents[0]:+.2f}"
        left.plot(
            np.arange(1, HIDDEN + 1), spectrum.exponents, "o-", ms=2, color=colour, label=label
        )
        right.semilogy(t, np.maximum(curve, 1e-38), color=colour, label=f"gain {gain}")
    left.axhline(0.0, color="0.4", linestyle=":", linewidth=1)
    left.set_xlabel("exponent i (descending)")
    left.set_ylabel("lambda_i (nats per time step)")
    left.set_title("Lyapunov spectrum at initialisation")
    left.legend(fontsize=8)
    right.set_xlabel("time step t")
    right.set_ylabel("||d(sum h_T) / dh_t||")
    right.set_title(f"gradient curve, T = {STEPS}")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT, dpi=80)
    print(f"wrote {OUT.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
