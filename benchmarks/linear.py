"""9. Linear recurrences (lru, mingru): the scan against the step loop, the probed step at
T=4096, and peak memory against T.

Three measurements, each case in a fresh process, one torch thread, the adding problem, hidden
32, batch 16:

* **scan vs loop**: one forward + backward of the cell and the model's head on the same batch,
  through the cell's fused path (the chunked scan of ``rnnlab_cells.scan``) and through the step
  loop the model runs otherwise (``rnnlab.run.run_loop``: ``project_inputs`` then ``step``),
  interleaved; the row is the loop's median over the scan's (the speed-up), T from 256 to 8192.
* **the probed step at T=4096**: ``train()`` with ``probe_every: 2`` (probed and unprobed steps
  alternate, as benchmark 3 measures them); median probed step over median unprobed step, with
  the probe through the scan (``Cell.probes_fused``: the probe enters b_t, the scan's backward
  gives dL/dh_t) and, for comparison, with the seam switched off (the generic probe, the
  unrolled step loop).
* **peak memory against T**: ``train()`` with every step probed, its peak RSS (VmHWM, reset
  after the build) minus the RSS before training, T from 1024 to 8192; the row is the peak
  over the peak at half the T (linear growth: at most 2).
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
    interleave,
    ratio_row,
    result,
    run_child,
)
from benchmarks.memory import MB, _reset_peak, _status
from benchmarks.probing import probed_and_unprobed

NAME = "linear"
TITLE = "Linear recurrences: scan vs step loop, the probed step at T=4096, memory against T"
CELLS: tuple[str, ...] = ("lru", "mingru")
SIZES: dict[str, Any] = {"hidden": 32, "batch": 16}
SPEEDUP = 1.0  # the scan must beat the loop (a target on loop / scan)
PROBED_TARGET = 1.5  # a probed step through the scan, over an unprobed one (benchmark 3's bound)
LINEAR = 2.1  # peak(T) / peak(T / 2): linear growth is at most 2 (a constant part makes it less)


def _config(cell: str, seq_len: int, **train: Any) -> dict[str, Any]:
    data = _runs.config(cell, seq_len, **SIZES, **train)
    data["dataset"]["test_size"] = 64
    from rnnlab.run import TrainConfig

    if "dynamics_every" in TrainConfig.model_fields:  # issue 19's spectra: not what is timed
        data["train"]["dynamics_every"] = 0
    return data


def scan_child(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: ``reps`` interleaved forward + backward passes, scan and loop."""
    import torch
    from torch.nn import functional as F

    from rnnlab.run import build, run_loop

    run = _runs.resolve(_config(args["cell"], args["seq_len"]))
    torch.manual_seed(0)
    dataset, _, model = build(run, torch.device("cpu"))
    x, y = next(dataset.batches("train", SIZES["batch"]))
    cell = model.layers()[0]

    def timed(scan: bool) -> float:
        start = time.perf_counter()
        state = cell.init_state(x.shape[1], x.device, x.dtype)
        out = cell.forward_fused(x, state)[0] if scan else run_loop(cell, x, state, None)
        F.mse_loss(model.head(out[-1]), y).backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    for _ in range(2):  # warm-up: the allocator
        timed(True)
        timed(False)
    return interleave({"scan": partial(timed, True), "loop": partial(timed, False)}, args["reps"])


def probed_child(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: one ``train()`` run, probe_every 2; median probed and unprobed step,
    the probe through the scan or (``loop``) through the unrolled step loop."""
    data = _config(args["cell"], args["seq_len"], probe_every=2, steps=args["steps"])
    cls = _runs.registry().get("cell", args["cell"])
    if args["loop"]:
        # the generic probe, for comparison
        cls.probes_fused = property(lambda self: False)  # type: ignore[attr-defined]
    probed, unprobed = probed_and_unprobed(data)
    return {"probed": probed, "unprobed": unprobed}


def memory_child(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: peak RSS of a ``train()`` run with every step probed, above start."""
    import torch

    from rnnlab.run import build

    data = _config(args["cell"], args["seq_len"], probe_every=1, steps=args["steps"])
    run = _runs.resolve(data)
    torch.manual_seed(0)
    build(run, torch.device("cpu"))  # warm: imports, allocator
    before = _status("VmRSS")
    exact = _reset_peak()
    _runs.train_timed(run)
    peak = _status("VmHWM")
    return {"peak_above_start_mb": (peak - before) / MB, "peak_reset": exact}


def child(args: dict[str, Any]) -> dict[str, Any]:
    work = {"scan": scan_child, "probed": probed_child, "memory": memory_child}[args["part"]]
    return work(args)


def run(quick: bool = False) -> dict[str, Any]:
    share, started = CpuShare(), time.perf_counter()
    if quick:
        lengths, reps, probed_t, probed_steps, memory_t, cells = (
            [64, 128],
            1,
            128,
            6,
            [64, 128],
            CELLS[:1],
        )
    else:
        lengths = [256, 512, 1024, 2048, 4096, 8192]
        reps, probed_t, probed_steps, memory_t, cells = 3, 4096, 12, [1024, 2048, 4096, 8192], CELLS
    rows: list[Row] = []
    details: dict[str, Any] = {"scan": {}, "probed": {}, "memory": {}}
    for cell in cells:
        for seq_len in lengths:
            times = run_child(
                __name__, {"part": "scan", "cell": cell, "seq_len": seq_len, "reps": reps}
            )
            details["scan"][f"{cell} T={seq_len}"] = times
            rows.append(
                ratio_row(
                    f"{cell} T={seq_len}: step loop over scan",
                    times["loop"],
                    times["scan"],
                    unit="ms",
                    baseline_label="scan (fused path), same process",
                    op=">",
                    limit=SPEEDUP,
                    scale=1000,
                )
            )
    for cell in cells:
        found = {
            mode: run_child(
                __name__,
                {
                    "part": "probed",
                    "cell": cell,
                    "seq_len": probed_t,
                    "steps": probed_steps,
                    "loop": mode == "loop",
                },
            )
            for mode in ("scan", "loop")
        }
        details["probed"][cell] = found
        for mode, label in (("scan", "probe through the scan"), ("loop", "generic loop probe")):
            probed, unprobed = found[mode]["probed"], found[mode]["unprobed"]
            rows.append(
                Row(
                    case=f"{cell} T={probed_t}: probed step, {label}",
                    value=probed * 1000,
                    unit="ms/step",
                    baseline=unprobed * 1000,
                    baseline_label="unprobed step (scan), same run",
                    ratio=probed / unprobed,
                    target=f"<= {PROBED_TARGET:g}x" if mode == "scan" else "",
                    ok=probed / unprobed <= PROBED_TARGET if mode == "scan" else None,
                )
            )
    for cell in cells:
        peaks: dict[int, float] = {}
        for seq_len in memory_t:
            got = run_child(
                __name__, {"part": "memory", "cell": cell, "seq_len": seq_len, "steps": 3}
            )
            details["memory"][f"{cell} T={seq_len}"] = got
            peaks[seq_len] = got["peak_above_start_mb"]
        for seq_len in memory_t:
            half = seq_len // 2
            ratio = peaks[seq_len] / peaks[half] if half in peaks else None
            rows.append(
                Row(
                    case=f"{cell} T={seq_len}: peak RSS of a probed trial",
                    value=peaks[seq_len],
                    unit="MB above start",
                    baseline=peaks.get(half),
                    baseline_label=f"the same at T={half}" if half in peaks else "",
                    ratio=ratio,
                    target=f"<= {LINEAR:g}x" if ratio is not None else "",
                    ok=ratio <= LINEAR if ratio is not None else None,
                    extra={"mb_per_1000_steps": 1000 * peaks[seq_len] / seq_len},
                )
            )
    method = (
        f"Adding problem, hidden {SIZES['hidden']}, batch {SIZES['batch']}, 1 torch thread, a "
        f"fresh process per case. Scan vs loop: {reps} interleaved forward + backward passes "
        "of each (after 2 warm-up passes), medians. Probed step: one train() run of "
        f"{probed_steps} steps at probe_every 2 per mode, median probed over median unprobed "
        "step (steps 1..N-2). Memory: train() of 3 steps, every step probed, validation and test "
        "sets of 64; peak RSS (VmHWM, reset after the build) minus the RSS before training. "
        "Small repeat counts: the machine is shared (see the CPU share below)."
    )
    return result(
        NAME, TITLE, method, rows, quick=quick, share=share, started=started, details=details
    )


if __name__ == "__main__":
    child_main(child)
