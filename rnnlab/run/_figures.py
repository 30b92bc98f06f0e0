"""Gradient-flow figures (matplotlib, Agg): heatmaps over training (the total curve ||dL/dh_t||
and the target curve ||dL_target/dh_t||, rnnlab.run._probe) and the first/last curves; and the
Lyapunov spectra at the first and the last measured step (rnnlab.run._dynamics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

FLOOR = 1e-38  # float32's smallest normal: underflowed norms are drawn at this floor


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


TOTAL, TARGET = "||dL/dh_t||", "||dL_target/dh_t||"
"""What the two curves are called on the figures (rnnlab.run._probe says what each one is)."""


def flow_heatmap(
    steps: list[int], flow: np.ndarray, path: Path, title: str, quantity: str = TOTAL
) -> None:
    """``flow[probe, layer, t]`` as log10 of ``quantity``: one panel per layer, probe step vs t."""
    plt = pyplot()
    layers = flow.shape[1]
    fig, axes = plt.subplots(layers, 1, figsize=(8, 2.2 + 2.0 * layers), squeeze=False)
    logs = np.log10(np.maximum(flow, FLOOR))
    for layer in range(layers):
        ax = axes[layer, 0]
        image = ax.imshow(
            logs[:, layer, :],
            aspect="auto",
            origin="lower",
            cmap="viridis",
            extent=(0.5, flow.shape[2] + 0.5, -0.5, len(steps) - 0.5),
            interpolation="nearest",
        )
        ticks = np.linspace(0, len(steps) - 1, num=min(len(steps), 6)).round().astype(int)
        ax.set_yticks(ticks, [str(steps[i]) for i in ticks])
        ax.set_xlabel("time step t")
        ax.set_ylabel("training step")
        ax.set_title(f"layer {layer}" if layers > 1 else title, fontsize=10)
        fig.colorbar(image, ax=ax, label=f"log10 {quantity} (-38: underflow)")
    if layers > 1:
        fig.suptitle(title)
    # fixed margins in inches (tight_layout was half of the drawing time): 0.55 below for the
    # x label, above for the title(s), 0.8 between panels for a label and the next title
    height = fig.get_figheight()
    top, bottom, gap = 1 - (0.75 if layers > 1 else 0.35) / height, 0.55 / height, 0.8 / height
    panels = top - bottom - gap * (layers - 1)  # the panels' share of the height
    fig.subplots_adjust(left=0.1, right=0.98, bottom=bottom, top=top, hspace=gap * layers / panels)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def flow_curves(steps: list[int], flow: np.ndarray, path: Path, title: str) -> None:
    """||dL/dh_t|| against t on a log axis at the first and the last probe (every layer)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    t = np.arange(1, flow.shape[2] + 1)
    picks = [(0, "first", "#0072B2")]  # Okabe-Ito blue and vermillion: colour-blind safe
    if len(steps) > 1:
        picks.append((len(steps) - 1, "last", "#D55E00"))
    for index, which, colour in picks:
        for layer in range(flow.shape[1]):
            style = ["-", "--", ":", "-."][layer % 4]
            label = f"{which} probe (step {steps[index]})"
            if flow.shape[1] > 1:
                label += f", layer {layer}"
            ax.plot(t, np.maximum(flow[index, layer], FLOOR), style, color=colour, label=label)
    if (flow[[i for i, _, _ in picks]] <= 0).any():
        ax.axhline(FLOOR, color="0.4", linestyle=":", linewidth=1)
        ax.annotate(
            "underflow: flushed to 0, drawn at 1e-38",
            (1, FLOOR),
            xytext=(0, 4),
            textcoords="offset points",
            fontsize=8,
            color="0.3",
        )
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel("||dL/dh_t|| (batch mean)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.92)  # not tight_layout: slow
    fig.savefig(path, dpi=110)
    plt.close(fig)


def lyapunov_spectra(steps: list[int], exponents: np.ndarray, path: Path, title: str) -> None:
    """``exponents[measure, layer, i]`` (NaN past a layer's k) against i at the first and the
    last measured step: one panel per layer, the line lambda = 0 between contracting (below)
    and chaotic (above) dynamics."""
    plt = pyplot()
    layers = exponents.shape[1]
    fig, axes = plt.subplots(1, layers, figsize=(4.2 * layers + 1.0, 3.8), squeeze=False)
    picks = [(0, "first", "#0072B2")]  # the colours of flow_curves
    if len(steps) > 1:
        picks.append((len(steps) - 1, "last", "#D55E00"))
    for layer in range(layers):
        ax = axes[0, layer]
        for index, which, colour in picks:
            values = exponents[index, layer]
            values = values[np.isfinite(values)]
            label = f"{which} (step {steps[index]})"
            ax.plot(np.arange(1, len(values) + 1), values, "o-", ms=3, color=colour, label=label)
        ax.axhline(0.0, color="0.4", linestyle=":", linewidth=1)
        ax.set_xlabel("exponent i (descending)")
        ax.set_ylabel("lambda_i (nats per time step)")
        top = "top layer" if layer == layers - 1 else f"layer {layer}"
        ax.set_title(title if layers == 1 else top, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if layers > 1:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.14, top=0.86 if layers > 1 else 0.9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
