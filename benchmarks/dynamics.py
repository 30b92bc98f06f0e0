"""9. Dynamics: what a Lyapunov spectrum costs, against a training step of the same model.

Issue 19 measures the spectrum of every layer at step 0 and at the end of every run, and the
log-singular spectrum of the Jacobian product once at initialisation, and allows them 5% of a
trial. On the flagship's trial shapes (experiments/vanishing.yaml: the adding problem, hidden 32,
T = 20 and 60, 1000 Adam steps of batch 64) that is 25 training steps per spectrum. Each case
times ``lyapunov_spectrum`` on a validation batch with k = min(W, 32) (rnn and gru: W = 32, the
whole J; lstm: W = 64 for (h, c), 32 of them) with the cell's analytic Jacobians and with
autograd (the cell inside a bare ``CellWrapper``, which has no ``step_jacobian``: the path of a
third-party cell or a remedy's wrapper), ``jacobian_log_singular_values`` on the same batch, and
one step of a plain torch loop as the baseline: the cell's own fused ``nn.RNN/LSTM/GRU`` and a
linear head, forward, MSE, backward and Adam on a training batch of 64, in the same process,
interleaved with the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks._timing import (
    CpuShare,
    Row,
    check,
    child_main,
    interleave,
    median,
    ratio_row,
    result,
    run_child,
)

NAME = "dynamics"
TITLE = "Dynamics: a Lyapunov spectrum vs a training step of the same model"
TRIAL_STEPS = 1000  # the flagship's train.steps
SHARE = 0.05  # issue 19: measuring at step 0 and at the end costs at most 5% of a trial
PER_SPECTRUM = SHARE * TRIAL_STEPS / 2  # 25 training steps
K_MAX = 32  # issue 19's train.lyapunov_k default: min(width, 32)
STEP_CALLS = 20  # training steps timed per repetition (median), each a few milliseconds
VAL_BATCHES = (32, 64)  # sequences the spectrum is measured on


def child(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: ``reps`` interleaved repetitions of each measurement of one case."""
    import torch
    from rnnlab_cells.twins import ElmanCell, GRUCell, LSTMCell
    from rnnlab_tasks.adding import AddingProblem
    from torch.nn import functional as F

    from rnnlab.base import CellWrapper
    from rnnlab.dynamics import jacobian_log_singular_values, lyapunov_spectrum

    torch.manual_seed(0)
    cells = {"rnn": ElmanCell, "lstm": LSTMCell, "gru": GRUCell}
    hidden, batch, seq_len = args["hidden"], args["batch"], args["seq_len"]
    task = AddingProblem(AddingProblem.Params(seq_len=seq_len, val_size=args["val"]))
    cell = cells[args["cell"]](task.input_size, hidden)
    wrapped = CellWrapper(cell)
    x_val = next(task.batches("val", args["val"]))[0]
    k = min(2 * hidden if args["cell"] == "lstm" else hidden, K_MAX)
    head = torch.nn.Linear(hidden, task.output_size)
    optimizer = torch.optim.Adam([*cell.rnn.parameters(), *head.parameters()], lr=1e-2)
    train = task.batches("train", batch)

    def timed(work: Callable[[], object]) -> Callable[[], float]:
        def once() -> float:
            start = time.perf_counter()
            work()
            return time.perf_counter() - start

        return once

    def training_step() -> None:
        x, y = next(train)
        out, _ = cell.rnn(x)
        loss = F.mse_loss(head(out[-1]), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()

    step = timed(training_step)
    cases = {
        "analytic": timed(lambda: lyapunov_spectrum(cell, x_val, k=k)),
        "autograd": timed(lambda: lyapunov_spectrum(wrapped, x_val, k=k)),
        "isometry": timed(lambda: jacobian_log_singular_values(cell, x_val)),
        "step": lambda: median([step() for _ in range(STEP_CALLS)]),
    }
    for work in cases.values():
        work()  # warm: first calls load kernels and allocate
    return {"k": k, **interleave(cases, args["reps"])}


def run(quick: bool = False) -> dict[str, Any]:
    """Per cell and length: a row per way of computing the spectrum, one for the isometry view,
    and one for the whole measurement as a share of a trial."""
    share, started = CpuShare(), time.perf_counter()
    if quick:
        cases, sizes, reps = [("rnn", 20, 8)], {"hidden": 16, "batch": 8}, 1
    else:  # the validation batch: the cost of the QRs is linear in it
        cases = [(c, t, v) for v in VAL_BATCHES for t in (20, 60) for c in ("rnn", "lstm", "gru")]
        sizes, reps = {"hidden": 32, "batch": 64}, 5
    rows: list[Row] = []
    for cell, seq_len, val in cases:
        args = {"cell": cell, "seq_len": seq_len, "val": val, "reps": reps, **sizes}
        found = run_child(__name__, args)
        name = f"{cell} T={seq_len} val {val}"
        for way in ("analytic", "autograd"):
            rows.append(
                ratio_row(
                    f"{name}: spectrum, {way} Jacobians (k={found['k']})",
                    found[way],
                    found["step"],
                    unit="ms",
                    baseline_label=f"training step (torch, batch {sizes['batch']})",
                    op="<=",
                    limit=PER_SPECTRUM,
                    scale=1000,
                )
            )
        rows.append(
            ratio_row(
                f"{name}: log singular values of the Jacobian product",
                found["isometry"],
                found["step"],
                unit="ms",
                baseline_label=f"training step (torch, batch {sizes['batch']})",
                op="<=",
                limit=PER_SPECTRUM,
                scale=1000,
            )
        )
        whole = [
            100 * (2 * a + i) / (TRIAL_STEPS * s)
            for a, i, s in zip(found["analytic"], found["isometry"], found["step"], strict=True)
        ]
        rows.append(
            Row(
                case=f"{name}: 2 spectra + the isometry view, share of a trial",
                value=median(whole),
                unit="% of a trial",
                target=f"<= {100 * SHARE:g}%",
                ok=check(median(whole), "<=", 100 * SHARE),
                extra={"reps": reps, "trial_steps": TRIAL_STEPS},
            )
        )
    method = (
        f"adding problem, hidden {sizes['hidden']}, validation batches of "
        f"{' and '.join(str(v) for v in sorted({c[2] for c in cases}))} sequences, "
        f"k = min(W, {K_MAX}), QR every step, float32, 1 torch thread, eval mode, no warm-up "
        "(a warm-up costs the same steps). Baseline: one plain torch training step (the cell's "
        f"fused module + nn.Linear, MSE, backward, Adam) on batch {sizes['batch']}, the median "
        f"of {STEP_CALLS} per repetition. {reps} interleaved repetitions in a fresh process per "
        "case; ratios are medians of the per-repetition ratios. Target: a spectrum within "
        f"{PER_SPECTRUM:g} training steps, so that two of them take at most {100 * SHARE:g}% of "
        f"a {TRIAL_STEPS}-step trial; the share row adds the isometry view (measured once) to "
        "the two analytic spectra and leaves out evaluation and probing, which make a real "
        "trial longer (the share is an upper bound)."
    )
    return result(NAME, TITLE, method, rows, quick=quick, share=share, started=started)


if __name__ == "__main__":
    child_main(child)
