"""The report's dynamics figures: what the gradient curves mean in terms of the dynamics.

Read from each trial's ``dynamics.npz`` (rnnlab.run._dynamics): the top layer's Lyapunov
spectrum at the first measured step (initialisation) and the last (after the last update), per
combination; and the final largest exponent against the target curve's final log10 ratio and
against the objective, one point per completed trial, so that a reader sees that a vanishing
gradient goes with contracting dynamics (lambda max below 0) and an exploding one with chaos.
A sweep whose runs recorded no dynamics (``train.dynamics_every: 0``, or recorded before issue
19) gets neither figure.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rnnlab._names import (
    COMPLETED,
    REPORT_LYAPUNOV_SCATTER,
    REPORT_SPECTRA,
)
from rnnlab.report._data import ReportData, Spectra, TrialData
from rnnlab.report._figures import grid_layout
from rnnlab.run import pyplot

FIRST, LAST = "#0072B2", "#D55E00"  # rnnlab.report._figures' first and last probe
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

FIGURES = (
    (
        REPORT_SPECTRA,
        "The top layer's Lyapunov spectrum (nats per time step, descending) at initialisation "
        "(blue) and after the last update (vermillion), on 32 fixed validation sequences: thin "
        "lines are seeds, bold their mean. Below the dotted line 0 a direction contracts (its "
        "gradient vanishes at that rate per step); above it, the dynamics are chaotic.",
    ),
    (
        REPORT_LYAPUNOV_SCATTER,
        "Each completed trial's final largest Lyapunov exponent (top layer) against its final "
        "target log10 ratio (left) and its objective (right), coloured by the first setting: "
        "contracting dynamics (lambda max < 0) are vanishing gradients, whose log10 ratio falls "
        "by about T lambda max / ln 10 over T steps.",
    ),
)


def read_spectra(data: ReportData) -> dict[int, Spectra]:
    """Every trial's spectra that its run recorded (read with its curves by
    :func:`rnnlab.report.collect`), by trial number."""
    return {t.number: t.spectra for t in data.trials if t.spectra is not None}


def _short(key: str) -> str:
    """``cell.name`` -> ``cell``, ``dataset.seq_len`` -> ``seq_len`` (as the other figures)."""
    parts = key.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def _title(axes: list[str], combo: tuple[str, ...]) -> str:
    return ", ".join(f"{_short(a)}={v}" for a, v in zip(axes, combo, strict=True))


def _groups(data: ReportData, have: dict[int, Spectra]) -> dict[tuple[str, ...], list[TrialData]]:
    rank = {tuple(row[a] for a in data.axes): i for i, row in enumerate(data.table)}
    groups: dict[tuple[str, ...], list[TrialData]] = {}
    for trial in data.trials:
        if trial.number in have:
            groups.setdefault(trial.combination(data.axes), []).append(trial)
    return dict(sorted(groups.items(), key=lambda item: rank.get(item[0], len(rank))))


def _mean(curves: list[np.ndarray]) -> np.ndarray:
    length = min(len(c) for c in curves)
    return np.mean([c[:length] for c in curves], axis=0)


def spectra_grid(data: ReportData, have: dict[int, Spectra], path: Path) -> Path | None:
    """Per combination: the spectra at init and at the end (seeds thin, mean bold)."""
    groups = _groups(data, have)
    if not groups:
        return None
    plt = pyplot()
    cols = min(4, len(groups))
    rows = math.ceil(len(groups) / cols)
    # each panel its own y range: an IRNN whose units all switched off sits at the floor (-87)
    fig, grid = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
    for ax, (combo, members) in zip(grid.flat, groups.items(), strict=False):
        for which, colour, name in (("first", FIRST, "init"), ("last", LAST, "end")):
            curves = [getattr(have[t.number], which) for t in members]
            curves = [c for c in curves if c.size]
            for curve in curves:
                ax.plot(np.arange(1, len(curve) + 1), curve, color=colour, lw=0.6, alpha=0.5)
            if curves:
                mean = _mean(curves)
                ax.plot(np.arange(1, len(mean) + 1), mean, color=colour, lw=2.0, label=name)
        ax.axhline(0.0, color="0.4", linestyle=":", linewidth=1)
        ax.set_title(_title(data.axes, combo), fontsize=8, y=1.0)
        ax.set_xlabel("exponent i")
        ax.grid(True, alpha=0.3)
    for ax in grid[:, 0]:
        ax.set_ylabel("lambda_i (nats / step)", fontsize=8)
    for ax in grid.flat:
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in list(grid.flat)[len(groups) :]:
        ax.axis("off")
    grid[0, 0].legend(fontsize=7)
    grid_layout(fig, rows, cols, gap=0.6)  # each panel its own y tick labels
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def lyapunov_scatter(data: ReportData, have: dict[int, Spectra], path: Path) -> Path | None:
    """Final lambda max against the final target log10 ratio and against the objective."""
    points = [
        (t, float(have[t.number].last.max()))
        for t in data.trials
        if t.outcome == COMPLETED and t.number in have and have[t.number].last.size
    ]
    if not points:
        return None
    first = data.axes[0] if data.axes else None
    colours: dict[str, str] = {}
    for trial, _ in points:
        key = trial.labels.get(first, "") if first else ""
        colours.setdefault(key, PALETTE[len(colours) % len(PALETTE)])
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    metric = data.plan.section.objective.metric
    for key, colour in colours.items():
        mine = [(t, lam) for t, lam in points if (t.labels.get(first, "") if first else "") == key]
        ratios = [(lam, t.target_ratio[-1][1]) for t, lam in mine if t.target_ratio]
        values = [(lam, t.value) for t, lam in mine if t.value is not None]
        label = f"{_short(first)}={key}" if first else None
        if ratios:
            left.scatter(*zip(*ratios, strict=True), s=18, color=colour, label=label)
        if values:
            right.scatter(*zip(*values, strict=True), s=18, color=colour, label=label)
    for ax, what in ((left, "final target log10 ratio"), (right, metric)):
        # linear within +-1 nat per step, logarithmic beyond: the floor (-87) stays on the page
        ax.set_xscale("symlog", linthresh=1.0)
        ax.axvline(0.0, color="0.4", linestyle=":", linewidth=1)
        ax.set_xlabel("final lambda max (top layer, nats / step)")
        ax.set_ylabel(what)
        ax.grid(True, alpha=0.3)
    if metric.endswith("loss") and all(t.value and t.value > 0 for t, _ in points):
        right.set_yscale("log")
    if first:
        left.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
