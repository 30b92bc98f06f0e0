"""What every figure of the page shares: the Agg backend, the colours, where figures are saved."""

from __future__ import annotations

from typing import Any

import numpy as np

from replication.reader import ROOT

FIGURES = ROOT / "docs" / "results"


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (imported here: the reader needs no matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, name: str) -> str:
    """Write ``fig`` to docs/results/``name``, close it, and return ``name``."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / name, dpi=90, bbox_inches="tight")
    pyplot().close(fig)
    return name


COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]


def colour(i: int) -> str:
    """The i-th colour of a colour-blind-safe palette (Okabe-Ito), cycling."""
    return COLOURS[i % len(COLOURS)]


def geometric_mean(curves: list[np.ndarray]) -> np.ndarray:
    """The geometric mean of ||dL/dh_t|| curves, zeros lifted to rnnlab's plotting floor."""
    from rnnlab.run import FLOOR

    return np.exp(np.mean(np.log(np.maximum(np.stack(curves), FLOOR)), axis=0))
