"""How a run ended (:class:`RunResult`), what a progress display sees during it, and the one line
that sums it up."""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnlab._names import ACCURACY, LOG10_RATIO, LOSS, TARGET_LOG10_RATIO, TEST, VAL


@dataclass
class Progress:
    """What a progress display shows after each step."""

    step: int
    steps: int
    loss: float
    accuracy: float | None
    log10_ratio: float | None
    """The last probe's ``grad/target/log10_ratio``: the target curve's, the one that shows
    vanishing on every task (rnnlab.run's probes)."""
    steps_per_s: float


@dataclass
class RunResult:
    """How a run ended. ``outcome`` is one of :data:`rnnlab._names.OUTCOMES`."""

    outcome: str
    steps_done: int
    message: str = ""
    diverged_at: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    where: str = ""
    seconds: float = 0.0
    selected_step: int | None = None
    """The step of the weights the test split was evaluated on (completed runs only)."""


def summary_line(result: RunResult) -> str:
    """``completed after 6 steps (1.2 s): val/loss 0.17, ...``: the outcome and final metrics."""
    splits = [f"{split}/{what}" for split in (VAL, TEST) for what in (LOSS, ACCURACY)]
    keys = [*splits, TARGET_LOG10_RATIO, LOG10_RATIO]
    shown = {k: result.metrics[k] for k in keys if k in result.metrics}
    parts = ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
    steps = f"{result.steps_done} step" + ("" if result.steps_done == 1 else "s")
    line = f"{result.outcome} after {steps} ({result.seconds:.1f} s)"
    return f"{line}: {parts}" if parts else line
