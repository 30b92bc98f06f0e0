"""3. Probing: what measuring ||dL/dh_t|| costs, per probed step and amortised.

Two runs of ``train()`` per case, interleaved: ``probe_every: 2``, where probed and unprobed
steps alternate (the per-step cost, measured side by side), and ``probe_every: 10`` (the
amortised cost of a ten-step cycle). A probed step is everything ``train()`` does on it: the
hand-written loop with the probes, the curves and their summaries, per-parameter gradient norms and
the recurrent weight's spectral norm and radius. Cells whose remedy wraps or normalises them
(batch-norm, layer-norm, gating, residual) have no fused path, so their unprobed step is the same
loop without probes. On a GPU the same runs on CUDA too, each step's end stamped after
``torch.cuda.synchronize`` (benchmarks/_runs.py).

The adding problem's target loss is its whole loss, so its probed step computes no extra
gradient. The target-curve rows measure what the target curve costs where it does: copy memory,
whose 10 recall steps are a share of a loss at every step, so a probed step also takes
``autograd.grad`` of their loss with respect to the probes. Two runs of ``train()`` with
``probe_every: 2``, interleaved: as rnnlab runs it, and with copy's ``target_loss`` returning
None (the dataset declaring its whole loss the target, the path of a last-step task); median
probed step over median probed step.
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
TARGET_TARGET = 1.5  # the target curve: one more backward pass through the hidden states alone
TARGET_CELLS = ("rnn", "lstm")

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


def copy_delay(seq_len: int) -> int:
    """Copy memory's delay T for sequences of ``seq_len`` steps (T + 20; at least 21)."""
    return max(seq_len - 20, 1)


def target_child(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: ``reps`` interleaved copy runs (probe_every 2), with the target curve
    and with it off (``target_loss`` returning None); their median probed steps."""
    from rnnlab_tasks.copy import CopyMemory

    data = _runs.config(
        args["cell"], 0, probe_every=2, steps=args["steps"], device=args["device"], **args["config"]
    )
    data["dataset"] = {"name": "copy", "seq_len": copy_delay(args["seq_len"]), "val_size": 64}
    own = CopyMemory.target_loss

    def probed(with_target: bool) -> float:
        stand_in = own if with_target else lambda self, out, y: None  # the whole loss: no extra
        setattr(CopyMemory, "target_loss", stand_in)  # noqa: B010 (mypy: method-assign)
        try:
            return probed_and_unprobed(data)[0]
        finally:
            setattr(CopyMemory, "target_loss", own)  # noqa: B010

    runs = interleave(
        {"with": partial(probed, True), "without": partial(probed, False)}, args["reps"]
    )
    return {name: list(values) for name, values in runs.items()}


def child(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: ``reps`` interleaved pairs of runs (probe_every 2 and 10) of a case."""
    if args.get("target"):
        return target_child(args)
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
    for device in where:
        rows.extend(target_rows(quick, device, seq_len, sizes, reps))
    long = steps[str(EVERY)]
    method = (
        f"adding T={seq_len}, batch {sizes['batch']}, hidden {sizes['hidden']}, Adam, 1 torch "
        "thread; `train()` timed between its progress callbacks (steps 1..N-2). Probed step: a "
        f"run of {steps['2']} steps with probe_every=2, so probed and unprobed steps alternate; "
        "median probed step over median unprobed step. Amortised: a run of "
        f"{long} steps with probe_every={EVERY}; the mean step of a {EVERY}-step cycle, "
        f"(probed + {EVERY - 1} x unprobed) / {EVERY} from the run's medians, over its median "
        f"unprobed step. {reps} repetitions of each run, interleaved, in a fresh process per "
        "case; ratios are medians of the per-run ratios. Target curve: copy memory with "
        f"{copy_delay(seq_len) + 20} steps (delay {copy_delay(seq_len)}), the same sizes, "
        f"{steps['2']} steps with "
        "probe_every=2; the median probed step of a run as rnnlab runs it over that of a run "
        "with copy's target_loss returning None, interleaved."
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


def target_rows(
    quick: bool, device: str, seq_len: int, sizes: dict[str, int], reps: int
) -> list[Row]:
    """What the target curve adds to a probed step of copy memory, one row per cell."""
    rows = []
    for cell in TARGET_CELLS[:1] if quick else TARGET_CELLS:
        args = {"cell": cell, "seq_len": seq_len, "reps": reps, "steps": 42, "target": True}
        runs = run_child(__name__, {**args, "config": sizes, "device": device})
        rows.append(
            ratio_row(
                f"{cell} copy: target curve on a probed step{suffix(device)}",
                runs["with"],
                runs["without"],
                unit="ms/probed step",
                baseline_label="probed step without it, same process",
                op="<=",
                limit=TARGET_TARGET,
                scale=1000,
            )
        )
    return rows


if __name__ == "__main__":
    child_main(child)
