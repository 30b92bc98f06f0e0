"""3. Probing: what measuring ||dL/dh_t|| costs, per probed step and amortised.

Two runs of ``train()`` per case, interleaved: ``probe_every: 2``, where probed and unprobed
steps alternate (the per-step cost, measured side by side), and ``probe_every: 10`` (the
amortised cost of a ten-step cycle). A probed step is everything ``train()`` does on it: the
hand-written loop with the probes, the curve and its summaries, per-parameter gradient norms and
the recurrent weight's spectral norm and radius. Cells whose remedy wraps or normalises them
(batch-norm, layer-norm, gating, residual) have no fused path, so their unprobed step is the same
loop without probes. On a GPU the same runs on CUDA too, each step's end stamped after
``torch.cuda.synchronize`` (benchmarks/_runs.py).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from benchmarks import _runs
from benchmarks._timing import (
    CpuShare,
    Row,
    child_main,
    devices,
    interleave,
    median,
    ratio_row,
    result,
    run_child,
    suffix,
)

NAME = "probing"
TITLE = "Probing: a probed step vs an unprobed one, and amortised at probe_every=10"
PER_STEP_TARGET = 1.5
AMORTISED_TARGET = 1.05
EVERY = 10

CASES: list[tuple[str, tuple[str, ...]]] = [
    ("rnn", ()),
    ("lstm", ()),
    ("gru", ()),
    ("rnn", ("clip",)),
    ("rnn", ("relu",)),
    ("rnn", ("batchnorm",)),
    ("rnn", ("layernorm",)),
    ("rnn", ("gating",)),
    ("rnn", ("residual",)),
]


def label(cell: str, remedies: tuple[str, ...]) -> str:
    return "+".join((cell, *remedies))


def probed_and_unprobed(data: dict[str, Any]) -> tuple[float, float]:
    """Median probed and median unprobed step of one ``train()`` run (steps 1 .. N-2)."""
    every = data["train"]["probe_every"]
    times = _runs.step_times(data)
    probed = [t for s, t in enumerate(times, start=1) if s % every == 0]
    unprobed = [t for s, t in enumerate(times, start=1) if s % every != 0]
    return median(probed), median(unprobed)


def child(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: ``reps`` interleaved pairs of runs (probe_every 2 and 10) of a case."""
    configs = {
        str(every): _runs.config(
            args["cell"],
            args["seq_len"],
            probe_every=every,
            steps=args["steps"][str(every)],
            remedies=args["remedies"],
            device=args["device"],
            **args["config"],
        )
        for every in (2, EVERY)
    }
    runs = interleave(
        {name: partial(probed_and_unprobed, data) for name, data in configs.items()}, args["reps"]
    )
    return {name: [list(pair) for pair in pairs] for name, pairs in runs.items()}


def run(quick: bool = False, only: str | None = None) -> dict[str, Any]:
    """One per-step row and one amortised row per case and device (the CPU, and CUDA when torch
    sees a GPU; ``only``: one of them alone), each case in a fresh process."""
    share, started = CpuShare(), time.perf_counter()
    where = devices(only)
    if quick:
        cases, seq_len, sizes, reps = CASES[:2], 20, {"hidden": 16, "batch": 8}, 1
    else:
        cases, seq_len, sizes, reps = CASES, 100, {"hidden": 128, "batch": 64}, 3
    # timed steps 1..N-2: 20 of 40 probed at probe_every=2, 8 of 80 at probe_every=10
    steps = {"2": 42, str(EVERY): 8 * EVERY + 2}
    rows: list[Row] = []
    for device in where:
        for cell, remedies in cases:
            args = {"cell": cell, "remedies": list(remedies), "seq_len": seq_len, "reps": reps}
            runs = run_child(__name__, {**args, "steps": steps, "config": sizes, "device": device})
            name = label(cell, remedies)
            rows.append(
                ratio_row(
                    f"{name}: probed step{suffix(device)}",
                    [p for p, _ in runs["2"]],
                    [u for _, u in runs["2"]],
                    unit="ms/step",
                    baseline_label="unprobed step, same run",
                    op="<=",
                    limit=PER_STEP_TARGET,
                    scale=1000,
                )
            )
            rows.append(
                ratio_row(
                    f"{name}: probe_every={EVERY}{suffix(device)}",
                    [(p + (EVERY - 1) * u) / EVERY for p, u in runs[str(EVERY)]],
                    [u for _, u in runs[str(EVERY)]],
                    unit="ms/step (mean)",
                    baseline_label="unprobed step",
                    op="<=",
                    limit=AMORTISED_TARGET,
                    scale=1000,
                    extra={"probed_ms": [1000 * p for p, _ in runs[str(EVERY)]]},
                )
            )
    long = steps[str(EVERY)]
    method = (
        f"adding T={seq_len}, batch {sizes['batch']}, hidden {sizes['hidden']}, Adam, 1 torch "
        "thread; `train()` timed between its progress callbacks (steps 1..N-2). Probed step: a "
        f"run of {steps['2']} steps with probe_every=2, so probed and unprobed steps alternate; "
        "median probed step over median unprobed step. Amortised: a run of "
        f"{long} steps with probe_every={EVERY}; the mean step of a {EVERY}-step cycle, "
        f"(probed + {EVERY - 1} x unprobed) / {EVERY} from the run's medians, over its median "
        f"unprobed step. {reps} repetitions of each run, interleaved, in a fresh process per "
        "case; ratios are medians of the per-run ratios."
    )
    notes = []
    if "cuda" in where:
        method += (
            " CUDA rows: the same on the GPU, the callback calling `torch.cuda.synchronize()` "
            "before it stamps a step's end."
        )
    elif only is None:
        notes.append("No GPU here: the CUDA cases did not run.")
    return result(
        NAME,
        TITLE,
        method,
        rows,
        quick=quick,
        share=share,
        started=started,
        notes=notes,
        devices=where,
    )


if __name__ == "__main__":
    child_main(child)
