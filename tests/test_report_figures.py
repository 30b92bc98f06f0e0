"""The report's one-panel-per-combination grids place their labels without measuring them
(issue 21: a third of the grids' drawing time): the places must be the ones matplotlib finds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import rnnlab.report._figures as figures
from rnnlab.run import pyplot

ROWS, COLS, PANELS = 3, 4, 10  # the last two panels empty, as in a grid of 10 combinations


def _grid(fixed: bool, sharey: bool) -> tuple[Any, list[Any]]:
    plt = pyplot()
    fig, grid = plt.subplots(
        ROWS, COLS, figsize=(3.6 * COLS, 2.6 * ROWS), squeeze=False, sharey=sharey
    )
    for i, ax in enumerate(grid.flat[:PANELS]):
        ax.plot(np.arange(1, 41), np.logspace(-9 + i % 3, 0, 40))
        ax.set_yscale("log")
        ax.set_title(f"cell=c{i} remedies=r{i}", fontsize=8, y=1.0 if fixed else None)
        ax.set_xlabel("time step t")
    for ax in grid[:, 0]:
        ax.set_ylabel("||dL/dh_t||", fontsize=8)
    for ax in list(grid.flat)[PANELS:]:
        ax.axis("off")
    figures.grid_layout(fig, ROWS, COLS, gap=0.35)
    return fig, list(grid.flat[:PANELS])


def _places(fig: Any, panels: list[Any]) -> list[tuple[float, ...]]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in panels:
        for text in (ax.xaxis.label, ax.yaxis.label, ax.title):
            if not text.get_text():  # not drawn
                continue
            box = text.get_window_extent(renderer)
            found.append((round(box.x0, 3), round(box.y0, 3), round(box.x1, 3), round(box.y1, 3)))
    pyplot().close(fig)
    return found


@pytest.mark.parametrize("sharey", [True, False])
@pytest.mark.parametrize("labelsize", ["medium", 7])
def test_grid_labels_and_titles_sit_where_matplotlib_puts_them(
    sharey, labelsize, monkeypatch
) -> None:
    from matplotlib import rc_context

    with rc_context({"xtick.labelsize": labelsize}):
        fixed = _places(*_grid(True, sharey))
        # the same margins, every label and title placed by matplotlib at drawing time
        monkeypatch.setattr(figures, "_fixed_labels", lambda fig: None)
        automatic = _places(*_grid(False, sharey))
    assert fixed == automatic
