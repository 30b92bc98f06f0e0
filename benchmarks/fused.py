"""2. Fused path: the built-in cells on an unprobed step against torch's own modules.

Both sides run forward, loss and backward on the same batch: rnnlab's ``SequenceModel`` (built by
``rnnlab.run.build``, so remedies and all) with ``probe=False``, and a bare ``nn.RNN/LSTM/GRU``
plus ``nn.Linear`` holding copies of the same weights. Each iteration is timed on its own and the
two sides alternate iteration by iteration. On a GPU the same runs on CUDA (cuDNN).
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
    interleave,
    paired_ratio,
    ratio_row,
    result,
    run_child,
    synchronizer,
)

NAME = "fused"
TITLE = "Fused path: built-in cells (unprobed step) vs torch's nn.RNN / nn.LSTM / nn.GRU"
TARGET = 1.05


def step_pair(
    cell: str, seq_len: int, hidden: int, batch: int, device: str
) -> dict[str, Callable[[], float]]:
    """Callables, each one forward + backward on the same batch, returning its seconds: rnnlab's
    model, the bare torch module, and a second copy of the torch module (an A/A control: its
    ratio to the first copy shows how much of a difference is noise)."""
    import torch
    from torch.nn import functional as F

    from rnnlab.run import build

    run = _runs.resolve(_runs.config(cell, seq_len, hidden=hidden, batch=batch))
    where = torch.device(device)
    torch.manual_seed(0)
    dataset, _, model = build(run, where)
    x, y = next(dataset.batches("train", batch))
    x, y = x.to(where), y.to(where)
    sync = synchronizer(device)  # CUDA: wait for the kernels before reading the clock

    def ours() -> float:
        start = time.perf_counter()
        out, _ = model(x, probe=False)
        F.mse_loss(out, y).backward()
        model.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - start

    def torch_side() -> Callable[[], float]:
        rnn, head = _runs.torch_twin(model, dataset.input_size)

        def theirs() -> float:
            start = time.perf_counter()
            out, _ = rnn(x)
            F.mse_loss(head(out[-1]), y).backward()
            rnn.zero_grad(set_to_none=True)
            head.zero_grad(set_to_none=True)
            sync()
            return time.perf_counter() - start

        return theirs

    sides = {"rnnlab": ours, "torch": torch_side(), "torch copy": torch_side()}
    for _ in range(3):  # warm-up: allocator, cuDNN plans
        for side in sides.values():
            side()
    return sides


def child(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: ``reps`` alternating iterations of each side of one case."""
    sides = step_pair(args["cell"], args["seq_len"], args["hidden"], args["batch"], args["device"])
    return interleave(sides, args["reps"])


def run(quick: bool = False, only: str | None = None) -> dict[str, Any]:
    """CPU always; CUDA too when torch sees a GPU (``only``: one of them alone). Each case in a
    fresh process."""
    share, started = CpuShare(), time.perf_counter()
    where = devices(only)
    if quick:
        lengths, hidden, batch = {20: 6}, 16, 8
    else:
        lengths, hidden, batch = {100: 30, 500: 20}, 128, 64
    rows: list[Row] = []
    notes: list[str] = []
    for device in where:
        found_rows: list[Row] = []
        for seq_len, count in lengths.items():
            for cell in ("rnn", "lstm", "gru"):
                reps = count * (5 if device == "cuda" else 1)
                times = run_child(
                    __name__,
                    {
                        "cell": cell,
                        "seq_len": seq_len,
                        "hidden": hidden,
                        "batch": batch,
                        "device": device,
                        "reps": reps,
                    },
                )
                found_rows.append(
                    ratio_row(
                        f"{cell} T={seq_len} ({device})",
                        times["rnnlab"],
                        times["torch"],
                        unit="ms fwd+bwd",
                        baseline_label=f"torch nn.{cell.upper()}"
                        + (" (cuDNN)" if device == "cuda" else ""),
                        op="<=",
                        limit=TARGET,
                        scale=1000,
                        extra={"control_ratio": paired_ratio(times["torch copy"], times["torch"])},
                    )
                )
        rows += found_rows
        notes.append(control_note(found_rows, device))
    if "cuda" not in where and only is None:
        notes.append("No GPU here: the cuDNN comparison did not run.")
    method = (
        f"batch {batch}, hidden {hidden}, adding problem, 1 torch thread on CPU. One forward + "
        "MSE + backward per iteration on one fixed batch; `SequenceModel(probe=False)` (from "
        "`rnnlab.run.build`) vs the bare torch module + `nn.Linear` with copied weights, and a "
        "second copy of the torch module as an A/A control; the sides alternate every "
        "iteration, in a fresh process per case; ratio = median of the paired ratios."
    )
    if "cuda" in where:
        method += (
            " CUDA rows: the same on the GPU (cuDNN under the torch side), each iteration ended "
            "by `torch.cuda.synchronize()` before the clock is read, 5 times as many iterations."
        )
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
