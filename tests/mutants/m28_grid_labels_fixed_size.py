"""The report grids' x labels are placed for 10-point tick labels whatever their size.

Issue 21: the grids place their labels without measuring them; the offset must follow the
tick label size (and the rest of matplotlib's settings). Caught by:
tests/test_report_figures.py."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_report_figures.py"]


def apply() -> None:
    import rnnlab.report._figures as figures

    def make(original: Any) -> Any:
        def fixed(fig: Any) -> None:
            from matplotlib import rcParams
            from matplotlib.transforms import offset_copy

            original(fig)
            below = rcParams["xtick.major.size"] + rcParams["xtick.major.pad"] + 10.0
            below += rcParams["axes.labelpad"]
            for ax in fig.axes:
                under = offset_copy(ax.transAxes, fig=fig, y=-below, units="points")
                ax.xaxis.set_label_coords(0.5, 0.0, transform=under)

        return fixed

    swap(figures, "_fixed_labels", make)


def pytest_configure(config: Any) -> None:
    apply()
