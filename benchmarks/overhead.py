"""1. Framework overhead: an rnnlab training step against a hand-written PyTorch loop.

rnnlab's side is ``train()`` itself, with probing off and evaluation only at the ends. The limit
is the loop anyone would write: ``nn.RNN/LSTM/GRU`` and a linear head with the very same initial
weights, the same batches from the same kind of dataset object, the same Adam, and nothing else
per step. The two alternate step by step: one hand-written step runs inside ``train()``'s
progress callback after each of its steps, so a burst of load from another process hits both.
On a GPU the same runs on CUDA too (cuDNN under both sides), every clock read after
``torch.cuda.synchronize``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks import _runs
from benchmarks._timing import (
    CpuShare,
    Row,
    child_main,
    control_note,
    devices,
    median,
    paired_ratio,
    ratio_row,
    result,
    run_child,
    suffix,
    synchronizer,
)

NAME = "overhead"
TITLE = "Framework overhead: rnnlab training step vs a hand-written PyTorch loop"
TARGET = 1.03


def torch_stepper(data: dict[str, Any]) -> Callable[[], float]:
    """One step of the hand-written loop per call (its own batch), returning its seconds."""
    import torch
    from torch.nn import functional as F

    from rnnlab.run import build

    run = _runs.resolve(data)
    t = run.config.train
    where = torch.device(t.device)
    sync = synchronizer(t.device)
    torch.manual_seed(run.config.seed)  # what train() does before build: the same weights
    dataset, _, model = build(run, where)
    rnn, head = _runs.torch_twin(model, dataset.input_size)
    optimizer = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=t.lr)
    batches = dataset.batches("train", t.batch_size)

    def step() -> float:
        start = time.perf_counter()
        x, y = next(batches)
        if where.type != "cpu":  # as train() moves them
            x, y = x.to(where, non_blocking=True), y.to(where, non_blocking=True)
        out, _ = rnn(x)
        loss = F.mse_loss(head(out[-1]), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # the trainer reads the loss every step; so does any real loop
        sync()  # CUDA: the optimizer's kernels, queued after the loss was read, are done
        return time.perf_counter() - start

    return step


def paired_steps(data: dict[str, Any]) -> tuple[list[float], list[float], list[float]]:
    """One ``train()`` run with hand-written steps after each of its steps (A, B, A, B, ...).

    The hand-written steps run inside ``train()``'s progress callback; rnnlab's step is the time
    from the end of one callback to the start of the next. Two independent copies of the
    hand-written loop take turns there: the second is an A/A control whose ratio to the first
    shows how large a difference this machine's noise makes.

    Returns:
        Seconds of rnnlab's steps 1 .. N-2 and of as many steps of each hand-written copy (the
        first, cold ones dropped).
    """
    from rnnlab.run import NullTracker, train

    theirs_step, control_step = torch_stepper(data), torch_stepper(data)
    sync = synchronizer(data["train"]["device"])
    ours: list[float] = []
    theirs: list[float] = []
    control: list[float] = []
    resumed: list[float] = []

    def progress(_: object) -> None:
        sync()  # CUDA: rnnlab's step has finished on the GPU before its end is stamped
        now = time.perf_counter()
        if resumed:
            ours.append(now - resumed[-1])
        if len(theirs) % 2:  # which copy goes first alternates
            control.append(control_step())
            theirs.append(theirs_step())
        else:
            theirs.append(theirs_step())
            control.append(control_step())
        resumed.append(time.perf_counter())

    outcome = train(_runs.resolve(data), NullTracker(keep_artifacts=False), progress=progress)
    if outcome.outcome != "completed":
        raise RuntimeError(f"benchmark run ended {outcome.outcome}: {outcome.message}")
    ours = ours[:-1]  # the last step also evaluates
    window = slice(1, len(ours) + 1)
    return ours, theirs[window], control[window]


def child(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: ``reps`` paired runs of one case; each run's median steps."""
    data = _runs.config(args["cell"], args["seq_len"], **args["config"])
    found: dict[str, list[float]] = {"ours": [], "theirs": [], "control": []}
    for _ in range(args["reps"]):
        for key, times in zip(found, paired_steps(data), strict=True):
            found[key].append(median(times))
    return found


def run(quick: bool = False, only: str | None = None) -> dict[str, Any]:
    """Measure every cell at every length, each in a fresh process; one row per (cell, T) and
    device: the CPU, and CUDA when torch sees a GPU (``only``: one of them alone)."""
    share, started = CpuShare(), time.perf_counter()
    where = devices(only)
    if quick:
        cases = [(c, 20) for c in ("rnn", "lstm", "gru")]
        sizes: dict[str, Any] = {"hidden": 16, "batch": 8}
        reps, steps = 2, {"cpu": {20: 6}, "cuda": {20: 6}}
    else:
        cases = [(c, t) for t in (100, 500) for c in ("rnn", "lstm", "gru")]
        sizes = {"hidden": 128, "batch": 64}
        # a CUDA step takes milliseconds: more of them per run cost little and steady the median
        reps, steps = 5, {"cpu": {100: 40, 500: 14}, "cuda": {100: 100, 500: 40}}
    rows: list[Row] = []
    notes: list[str] = []
    for device in where:
        found_rows: list[Row] = []
        for cell, seq_len in cases:
            count = steps[device][seq_len]
            config = {"steps": count, **sizes, "device": device}
            found = run_child(
                __name__, {"cell": cell, "seq_len": seq_len, "config": config, "reps": reps}
            )
            found_rows.append(
                ratio_row(
                    f"{cell} T={seq_len}{suffix(device)}",
                    found["ours"],
                    found["theirs"],
                    unit="ms/step",
                    baseline_label="hand-written torch loop"
                    + (" (cuDNN)" if device == "cuda" else ""),
                    op="<=",
                    limit=TARGET,
                    scale=1000,
                    extra={
                        "steps_per_rep": count - 2,
                        "control_ratio": paired_ratio(found["control"], found["theirs"]),
                        "per_run_s": found,
                    },
                )
            )
        rows += found_rows
        notes.append(control_note(found_rows, device))
    method = (
        f"batch {sizes['batch']}, hidden {sizes['hidden']}, adding problem, Adam, 1 torch thread, "
        "probing off. rnnlab: `train()`, its step timed from the end of one progress callback to "
        "the start of the next (steps 1..N-2; the last also evaluates). Baseline: `nn.RNN/LSTM/"
        "GRU` + `nn.Linear` with the same initial weights, batches and Adam, one step run inside "
        "each progress callback (and a second copy of it as an A/A control), so they alternate "
        "step by step. Per run the median step of "
        f"each side; {reps} runs in a fresh process per case; ratio = median of the per-run "
        "ratios."
    )
    if "cuda" in where:
        cuda_steps = ", ".join(f"{c} steps at T={t}" for t, c in steps["cuda"].items())
        method += (
            " CUDA rows: the same on the GPU (cuDNN under both sides; batches moved as `train()` "
            "moves them), `torch.cuda.synchronize()` before every clock read (in the callback "
            "before rnnlab's step is stamped, in the hand-written step after its optimizer "
            f"step), {cuda_steps} per run."
        )
    if "cuda" not in where and only is None:
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
