"""9. Dynamics: what the Lyapunov spectra cost, per spectrum and as a share of a flagship trial.

Issue 19 measures the spectrum of every layer before the first update and after the last of
every run, and the log-singular spectrum of the Jacobian product once at initialisation, and
allows them 5% of a trial. Two measurements:

* per spectrum, on the flagship's trial shapes (experiments/vanishing.yaml: the adding problem,
  hidden 32, T = 20 and 60): ``lyapunov_spectrum`` on the 32 validation sequences a run uses, with
  k = min(W, 32) (rnn and gru: W = 32, the whole J; lstm: W = 64 for (h, c), 32 of them), with
  the cell's analytic Jacobians and with autograd (the cell inside a bare ``CellWrapper``, which
  has no ``step_jacobian``: the path of a third-party cell or a remedy's wrapper), and
  ``jacobian_log_singular_values`` on the 8 sequences a run uses, against one step of a plain
  torch loop (the cell's own fused ``nn.RNN/LSTM/GRU`` and a linear head, forward, MSE, backward
  and Adam on a training batch of 64), in the same process, interleaved;
* the share of a real trial: the flagship's trial (1000 steps of batch 64, evaluation and probes
  every 100, its artifacts written) trained by ``rnnlab.run.train`` with the default
  ``train.dynamics_every``, the time the run spent measuring (``summary.json``'s
  ``dynamics.seconds``: both spectra and the isometry view) over the trial's wall time: what the
  trial pays, since ``lyapunov.png`` is drawn off the trial's path (a sweep's Drawer process, a
  tracked ``rnnlab run``'s helper process: the trackers' ``draws_figures``); the drawing itself
  is timed too and reported with the measuring as the machine's whole CPU cost; and, as a
  cross-check, the same trial with ``dynamics_every: 0``.
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
TITLE = "Dynamics: a Lyapunov spectrum vs a training step, and its share of a flagship trial"
TRIAL_STEPS = 1000  # the flagship's train.steps
SHARE = 0.05  # issue 19: measuring at step 0 and at the end costs at most 5% of a trial
PER_SPECTRUM = SHARE * TRIAL_STEPS / 2  # 25 training steps
K_MAX = 32  # issue 19's train.lyapunov_k default: min(width, 32)
STEP_CALLS = 20  # training steps timed per repetition (median), each a few milliseconds
VAL = 32  # rnnlab.run._dynamics.SEQUENCES: the validation sequences a run measures on
ISOMETRY = 8  # rnnlab.run._dynamics.ISOMETRY_SEQUENCES


def child(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: ``reps`` interleaved repetitions of each measurement of one case."""
    if args.get("trial"):
        return trial(args)
    import torch
    from rnnlab_cells.twins import ElmanCell, GRUCell, LSTMCell
    from rnnlab_tasks.adding import AddingProblem
    from torch.nn import functional as F

    from rnnlab.base import CellWrapper
    from rnnlab.run import jacobian_log_singular_values, lyapunov_spectrum

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
        "isometry": timed(lambda: jacobian_log_singular_values(cell, x_val[:, :ISOMETRY])),
        "step": lambda: median([step() for _ in range(STEP_CALLS)]),
    }
    for work in cases.values():
        work()  # warm: first calls load kernels and allocate
    return {"k": k, **interleave(cases, args["reps"])}


def trial(args: dict[str, Any]) -> dict[str, Any]:
    """One flagship trial with the dynamics on (the default) and one with them off, ``reps``
    times interleaved: wall seconds, the seconds measuring, and drawing lyapunov.png."""
    import json
    from pathlib import Path

    import numpy as np

    from benchmarks._runs import config, resolve
    from rnnlab.run import NullTracker, train
    from rnnlab.run import _figures as plots

    class Keep(NullTracker):
        """Writes the artifacts (as a tracked trial does) and reads back what they say."""

        def __init__(self) -> None:
            super().__init__(keep_artifacts=True)
            self.measuring = 0.0
            self.drawing = 0.0

        def log_artifacts(self, folder: Path) -> None:
            super().log_artifacts(folder)
            self.measuring = json.loads((folder / "summary.json").read_text())["dynamics"][
                "seconds"
            ]
            if (folder / "dynamics.npz").exists():  # time the figure the run drew
                with np.load(folder / "dynamics.npz") as saved:
                    steps, exponents = [int(s) for s in saved["steps"]], saved["exponents"]
                start = time.perf_counter()
                plots.lyapunov_spectra(steps, exponents, folder / "again.png", "title")
                self.drawing = time.perf_counter() - start

    def once(
        dynamics_every: int | None, steps: int = args["steps"]
    ) -> Callable[[], dict[str, float]]:
        data = config(
            args["cell"],
            args["seq_len"],
            hidden=32,
            batch=64,
            steps=steps,
            val_size=500,
            threads=1,
            probe_every=100,
            eval_every=100,
        )
        data["train"].update(lr=1e-2, dynamics_every=dynamics_every)
        run = resolve(data)

        def work() -> dict[str, float]:
            tracker = Keep()
            start = time.perf_counter()
            train(run, tracker)
            wall = time.perf_counter() - start - tracker.drawing  # not the re-drawing
            return {"wall": wall, "measuring": tracker.measuring, "drawing": tracker.drawing}

        return work

    for warm in (once(None, 20), once(0, 20)):  # imports, kernels, matplotlib: not timed
        warm()
    found = interleave({"on": once(None), "off": once(0)}, args["reps"])
    return {"on": found["on"], "off": found["off"]}


def run(quick: bool = False) -> dict[str, Any]:
    """Per cell and length: a row per way of computing the spectrum and one for the isometry
    view (against a training step), then the share of a real flagship trial per cell."""
    share, started = CpuShare(), time.perf_counter()
    if quick:
        cases, sizes, reps = [("rnn", 20, 8)], {"hidden": 16, "batch": 8}, 1
        trials, steps, trial_reps = [("rnn", 20)], 50, 1
    else:
        cases = [(c, t, VAL) for t in (20, 60) for c in ("rnn", "lstm", "gru")]
        sizes, reps = {"hidden": 32, "batch": 64}, 5
        trials, steps, trial_reps = (
            [(c, t) for t in (20, 60) for c in ("rnn", "lstm", "gru")],
            1000,
            2,
        )
    rows: list[Row] = []
    for cell, seq_len, val in cases:
        args = {"cell": cell, "seq_len": seq_len, "val": val, "reps": reps, **sizes}
        found = run_child(__name__, args)
        name = f"{cell} T={seq_len} val {val}"
        measured = [
            (f"spectrum, {way} Jacobians (k={found['k']})", way) for way in ("analytic", "autograd")
        ]
        measured.append(
            (f"log singular values of the Jacobian product ({ISOMETRY} of them)", "isometry")
        )
        for label, key in measured:
            rows.append(
                ratio_row(
                    f"{name}: {label}",
                    found[key],
                    found["step"],
                    unit="ms",
                    baseline_label=f"training step (torch, batch {sizes['batch']})",
                    op="<=",
                    limit=PER_SPECTRUM,
                    scale=1000,
                )
            )
    for cell, seq_len in trials:
        args = {"trial": True, "cell": cell, "seq_len": seq_len, "steps": steps, "reps": trial_reps}
        found = run_child(__name__, args, timeout=1800)
        on, off = found["on"], found["off"]
        spent = [100 * r["measuring"] / r["wall"] for r in on]
        whole = [100 * (r["measuring"] + r["drawing"]) / r["wall"] for r in on]
        rows.append(
            Row(
                case=f"{cell} T={seq_len}: the dynamics' share of a flagship trial ({steps} steps)",
                value=median(spent),
                unit="% of the trial",
                target=f"<= {100 * SHARE:g}%",
                ok=check(median(spent), "<=", 100 * SHARE),
                extra={
                    "reps": trial_reps,
                    "trial_s": median([r["wall"] for r in on]),
                    "measuring_s": median([r["measuring"] for r in on]),
                    "drawing_s": median([r["drawing"] for r in on]),
                },
            )
        )
        rows.append(
            Row(
                case=f"{cell} T={seq_len}: measuring plus drawing lyapunov.png off the trial's "
                "path (the machine's CPU)",
                value=median(whole),
                unit="% of the trial",
                extra={"reps": trial_reps, "drawing_s": median([r["drawing"] for r in on])},
            )
        )
        rows.append(
            Row(
                case=f"{cell} T={seq_len}: the same trial, dynamics_every 0 (cross-check)",
                value=median(
                    [
                        100 * (a["wall"] - b["wall"]) / a["wall"]
                        for a, b in zip(on, off, strict=True)
                    ]
                ),
                unit="% shorter",
                extra={"reps": trial_reps, "trial_s": median([r["wall"] for r in off])},
            )
        )
    method = (
        f"adding problem, hidden {sizes['hidden']}, {VAL} validation sequences ({ISOMETRY} for "
        f"the Jacobian product), k = min(W, {K_MAX}), QR every step, float32, 1 torch thread, "
        "eval mode, no warm-up. Per spectrum, against one plain torch training step (the cell's "
        f"fused module + nn.Linear, MSE, backward, Adam) on batch {sizes['batch']}, the median "
        f"of {STEP_CALLS} per repetition; {reps} interleaved repetitions in a fresh process per "
        "case, ratios the medians of the per-repetition ratios; target: a spectrum within "
        f"{PER_SPECTRUM:g} training steps, which would keep two of them within {100 * SHARE:g}% "
        f"of a {TRIAL_STEPS}-step plain loop. The share rows time the flagship's trial itself "
        f"(rnnlab.run.train, {steps} steps, lr 0.01, eval and probes every 100, 500 validation "
        "sequences, artifacts written to a temporary folder, no MLflow), the dynamics on and off "
        f"interleaved, {trial_reps} of each in a fresh process per cell: the run's own timer of "
        "its two measurements over the trial's wall time (target "
        f"{100 * SHARE:g}%, issue 19; lyapunov.png is drawn off the trial's path, by the sweep's "
        "Drawer or the tracked run's helper process, and timed separately: the second row per "
        "trial adds it, as the CPU the machine spends); the cross-check is the wall-time "
        "difference to the trial without them, noisier on a shared machine."
    )
    notes = [
        "The share rows count what the trial waits for: the measuring. Both trackers a flagship "
        "trial runs under (the sweep worker's PipeTracker, the tracked `rnnlab run`'s "
        "BackgroundTracker) draw lyapunov.png off the trial's path (``draws_figures``); the "
        "benchmark times the same drawing in its own process and adds it in the second row, "
        "the CPU the machine spends on the dynamics per trial.",
        "The cross-check (wall time with the dynamics off) is only as good as the machine is "
        "quiet: with other processes using much of the CPU its differences are noise, and the "
        "share rows (the run's own timer) are the figure to read.",
    ]
    return result(NAME, TITLE, method, rows, quick=quick, share=share, started=started, notes=notes)


if __name__ == "__main__":
    child_main(child)
