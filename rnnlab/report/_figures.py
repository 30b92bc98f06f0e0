"""The figures of a sweep report (matplotlib, Agg; Okabe-Ito colours, labelled axes)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.report._data import ReportData, TrialData
from rnnlab.run import FLOOR, pyplot
from rnnlab.sweep import Range, param_importances

PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
STYLES = ["-", "--", ":", "-."]
FIRST, LAST = "#0072B2", "#D55E00"


def _groups(data: ReportData) -> dict[tuple[str, ...], list[TrialData]]:
    """Trials by combination, in the outcome table's order (the sweep file's)."""
    axes = data.axes
    rank = {tuple(row[a] for a in axes): i for i, row in enumerate(data.table)}
    groups: dict[tuple[str, ...], list[TrialData]] = {}
    for trial in data.trials:
        groups.setdefault(trial.combination(axes), []).append(trial)
    return dict(sorted(groups.items(), key=lambda item: rank.get(item[0], len(rank))))


def _short(key: str) -> str:
    """``cell.name`` -> ``cell``, ``dataset.seq_len`` -> ``seq_len``: panel titles stay short."""
    parts = key.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def _title(axes: list[str], combo: tuple[str, ...]) -> str:
    return ", ".join(f"{_short(a)}={v}" for a, v in zip(axes, combo, strict=True))


def _save(fig: Any, path: Path, tight: bool = True) -> Path:
    """Save at 100 dpi; ``tight``: cropped to what was drawn (a second drawing pass)."""
    fig.savefig(path, dpi=100, **({"bbox_inches": "tight"} if tight else {}))
    pyplot().close(fig)
    return path


def grid_layout(fig: Any, rows: int, cols: int, gap: float) -> None:
    """Margins in inches for a grid of panels: room for the y label and tick labels on the
    left, a title and the x label per row, ``gap`` inches between columns. Used instead of
    ``tight_layout`` (and a tight bounding box) on the one-panel-per-combination grids, where
    measuring every tick label first cost more than drawing them (issue 21: the flagship's
    gradient-flow and spectra grids were most of ``rnnlab report``'s time). The panels' x labels
    are placed as matplotlib would (the tick length, pad, label size and label pad below the
    axes) and an empty y label is not placed at all, instead of measuring the tick labels of
    every panel at drawing time (a third of the grids' time); their titles are given
    ``y=1.0`` by the callers for the same reason (the place matplotlib finds with bottom ticks)."""
    width, height = fig.get_size_inches()
    left, right, top, bottom, row_gap = 0.8, 0.15, 0.35, 0.55, 0.75
    panel_w = (width - left - right - gap * (cols - 1)) / cols
    panel_h = (height - top - bottom - row_gap * (rows - 1)) / rows
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        wspace=gap / panel_w,
        hspace=row_gap / panel_h,
    )
    _fixed_labels(fig)


def _fixed_labels(fig: Any) -> None:
    """The x labels at their automatic place with bottom ticks, computed once; empty y labels
    not placed (see :func:`grid_layout`)."""
    from matplotlib import rcParams
    from matplotlib.font_manager import FontProperties
    from matplotlib.transforms import offset_copy

    tick_labels = FontProperties(size=rcParams["xtick.labelsize"]).get_size_in_points()
    below = rcParams["xtick.major.size"] + rcParams["xtick.major.pad"]
    below += tick_labels + rcParams["axes.labelpad"]
    for ax in fig.axes:
        under = offset_copy(ax.transAxes, fig=fig, y=-below, units="points")
        ax.xaxis.set_label_coords(0.5, 0.0, transform=under)
        if not ax.yaxis.get_label_text():
            ax.yaxis.set_label_coords(0.0, 0.5)


def objective_heatmap(data: ReportData, path: Path) -> Path | None:
    """Mean objective over the first two settings, one panel per value of the others."""
    axes = data.axes
    if not axes or not any(r["mean"] is not None for r in data.table):
        return None
    rows_axis, cols_axis = axes[0], (axes[1] if len(axes) > 1 else None)
    rest = axes[2:]
    panels = _in_order([tuple(r[a] for a in rest) for r in data.table])
    row_values = _in_order([r[rows_axis] for r in data.table])  # the table keeps the file's order
    col_values = _in_order([r[cols_axis] for r in data.table]) if cols_axis else [""]
    plt = pyplot()
    width = 1.2 + 1.1 * len(col_values)
    fig, grid = plt.subplots(
        1, len(panels), figsize=(width * len(panels), 1.2 + 0.45 * len(row_values)), squeeze=False
    )
    metric = data.plan.section.objective.metric
    norm = _shared_norm([r["mean"] for r in data.table if r["mean"] is not None])
    from matplotlib import colormaps

    cmap = colormaps["cividis"].with_extremes(bad="#dddddd")  # grey: no completed trial
    for ax, panel in zip(grid[0], panels, strict=True):
        matrix = np.full((len(row_values), len(col_values)), np.nan)
        for r in data.table:
            if tuple(r[a] for a in rest) == panel and r["mean"] is not None:
                j = col_values.index(r[cols_axis]) if cols_axis else 0
                matrix[row_values.index(r[rows_axis]), j] = r["mean"]
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, aspect="auto", norm=norm)
        for (i, j), value in np.ndenumerate(matrix):
            text = "n/a" if math.isnan(value) else f"{value:.3g}"
            dark = not math.isnan(value) and float(image.norm(value)) < 0.5  # cividis: dark low
            colour = "#ffffff" if dark else "#000000"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
        ax.set_xticks(range(len(col_values)), col_values, rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(len(row_values)), row_values, fontsize=8)
        ax.set_xlabel(cols_axis or "")
        ax.set_ylabel(rows_axis)
        ax.set_title(_title(rest, panel) or metric, fontsize=9)
        fig.colorbar(image, ax=ax, label=f"{metric} (mean over seeds)", shrink=0.8)
    fig.tight_layout()
    return _save(fig, path)


def _in_order(values: list[Any]) -> list[Any]:
    """Distinct values, first appearance first."""
    return list(dict.fromkeys(values))


def _shared_norm(values: list[float]) -> Any:
    """One colour scale for every panel; logarithmic when the values span orders of magnitude."""
    from matplotlib.colors import LogNorm, Normalize

    low, high = min(values), max(values)
    if low > 0 and high / low > 100:
        return LogNorm(low, high)
    return Normalize(low, high)


def flow_grid(data: ReportData, path: Path) -> Path | None:
    """Per combination, against t on a log axis, at the first probe and the last: the target
    curve ||dL_target/dh_t|| (solid; seeds thin, their geometric mean bold) and the total curve
    ||dL/dh_t|| (dashed, geometric mean). Runs recorded before the target curve show the total
    one alone."""
    groups = {k: v for k, v in _groups(data).items() if any(t.flow is not None for t in v)}
    if not groups:
        return None
    plt = pyplot()
    cols = min(4, len(groups))
    rows = math.ceil(len(groups) / cols)
    fig, grid = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False, sharey=True
    )
    for ax, (combo, members) in zip(grid.flat, groups.items(), strict=False):
        for index, colour, name in ((0, FIRST, "first probe"), (-1, LAST, "last probe")):
            targets = [
                c for c in (_last_layer(t.target_flow, index) for t in members) if c is not None
            ]
            totals = [c for c in (_last_layer(t.flow, index) for t in members) if c is not None]
            t_axis = np.arange(1, totals[0].shape[0] + 1)
            for curve in targets:
                ax.plot(t_axis, curve, color=colour, linewidth=0.6, alpha=0.5)
            if targets:
                ax.plot(t_axis, _geomean(targets), color=colour, linewidth=2.0, label=name)
            ax.plot(t_axis, _geomean(totals), "--", color=colour, linewidth=1.0)
        ax.set_yscale("log")
        ax.set_title(_title(data.axes, combo), fontsize=8, y=1.0)
        ax.set_xlabel("time step t")
        ax.grid(True, which="major", alpha=0.3)
    for ax in grid[:, 0]:
        ax.set_ylabel("||dL_target/dh_t||; dashed ||dL/dh_t||", fontsize=8)
    for ax in list(grid.flat)[len(groups) :]:
        ax.axis("off")
    grid[0, 0].legend(fontsize=7)
    grid_layout(fig, rows, cols, gap=0.35)
    return _save(fig, path, tight=False)


def _last_layer(flow: np.ndarray | None, index: int) -> np.ndarray | None:
    """The top layer's curve at probe ``index``, lifted to the plotting floor."""
    return None if flow is None else np.maximum(flow[index, -1], FLOOR)


def _geomean(curves: list[np.ndarray]) -> np.ndarray:
    return np.exp(np.mean(np.log(np.stack(curves)), axis=0))


def history_panels(
    data: ReportData,
    path: Path,
    attribute: str,
    ylabel: str,
    log: bool = False,
    dashed: str | None = None,
) -> Path | None:
    """A history (``objective``, ``target_ratio``, ...) against training step: one panel per
    value of the first setting, one line per combination of the others (mean over seeds); with
    ``dashed``, a second history of the same trials drawn dashed in the same colour."""
    axes = data.axes
    shown = [attribute] if dashed is None else [attribute, dashed]
    groups = {
        k: v for k, v in _groups(data).items() if any(getattr(t, a) for t in v for a in shown)
    }
    if not groups:
        return None
    first = _in_order([combo[0] for combo in groups]) if axes else [""]
    plt = pyplot()
    fig, grid = plt.subplots(
        1, len(first), figsize=(4.2 * len(first), 3.4), squeeze=False, sharey=True
    )
    styles = itertools.cycle([(c, s) for s in STYLES for c in PALETTE])
    style_of: dict[tuple[str, ...], tuple[str, str]] = {}
    for combo, members in groups.items():
        ax = grid[0, first.index(combo[0]) if axes else 0]
        rest = combo[1:]
        if rest not in style_of:
            style_of[rest] = next(styles)
        colour, style = style_of[rest]
        for which in shown:
            by_step: dict[int, list[float]] = {}
            for t in members:
                for step, value in getattr(t, which):
                    if math.isfinite(value):
                        by_step.setdefault(step, []).append(value)
            steps = sorted(by_step)
            means = [float(np.mean(by_step[s])) for s in steps]
            if which == attribute:
                label = _title(axes[1:], rest) or "all"
                ax.plot(steps, means, style, color=colour, linewidth=1.4, label=label)
            else:
                ax.plot(steps, means, ":", color=colour, linewidth=1.0)
        ax.set_title(_title(axes[:1], combo[:1]) if axes else "", fontsize=9)
    for ax in grid[0]:
        ax.set_xlabel("training step")
        if log:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    grid[0, 0].set_ylabel(ylabel)
    grid[0, -1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def importances(data: ReportData, path: Path) -> Path | None:
    """Optuna's parameter importances, when a sampler varied continuous settings."""
    section = data.plan.section
    if section.sampler == "grid" or not any(isinstance(v, Range) for v in section.space.values()):
        return None
    scores = param_importances(data.study)
    if scores is None:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.6 + 0.4 * len(scores)))
    names = list(scores)[::-1]
    ax.barh(names, [scores[n] for n in names], color=PALETTE[0])
    ax.set_xlabel("importance for the objective (fANOVA, sums to 1)")
    fig.tight_layout()
    return _save(fig, path)
