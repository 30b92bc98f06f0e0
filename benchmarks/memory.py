"""8. Memory: peak RSS of one trial at T=1000, hidden 256, batch 64, probed and unprobed.

Each measurement is a fresh process (peak RSS is per process). The peak is reset
(``/proc/self/clear_refs``) after the model is built, so it covers training alone; the figure is
the peak minus the RSS at that moment. Three ways of training per cell:

* ``train()`` with ``probe_every: 0`` (fused) and with ``probe_every: 1`` (every step probed);
* the least a probed step can keep: the same model's ``forward(probe=True)``, loss, backward, the
  curve from the probe's gradient, the optimizer step, and every reference dropped before the
  next step; with ``train()``'s evaluations before the first step and after the last.

The child also counts what autograd saves for backward (``saved_tensors_hooks``) in a probed and
an unprobed forward: the memory the backward pass needs.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import _runs
from benchmarks._timing import CpuShare, Row, child_main, interleave, median, result, run_child

NAME = "memory"
TITLE = "Memory: peak RSS of one trial, probed vs unprobed"
TARGET = 1.05  # the probed trial against the least a probed step keeps (peaks repeat to ~1%)
MB = 2**20


def _status(key: str) -> int:
    """A ``/proc/self/status`` figure in bytes (``VmRSS``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return False
    return True


def saved_bytes(model: Any, x: Any, probe: bool) -> int:
    """Bytes of the distinct storages autograd saves for backward in one forward."""
    import torch

    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x, probe=probe)
    return sum(storages.values())


def minimal_probed_steps(run: Any, steps: int) -> None:
    """The least a probed training step keeps: nothing survives from one step to the next."""
    import torch

    from rnnlab.run import build, evaluate

    cpu = torch.device("cpu")
    dataset, _, model = build(run, cpu)
    optimizer = torch.optim.Adam(model.parameters(), lr=run.config.train.lr)
    size = run.config.train.batch_size
    batches = dataset.batches("train", size)
    evaluate(model, dataset, "val", max(size, 256), cpu)  # as train() does, first and last
    for _ in range(steps):
        x, y = next(batches)
        out, probes = model(x, probe=True)
        loss = dataset.loss(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        curves = [z.grad.norm(dim=-1).mean(dim=1) for z in probes if z.grad is not None]
        optimizer.step()
        del out, probes, loss, curves
    evaluate(model, dataset, "val", max(size, 256), cpu)


def child(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: one way of training, its peak RSS above the RSS before training."""
    import torch

    from rnnlab.run import build

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    steps = args["steps"]
    probe_every = 1 if args["mode"] in ("probed", "minimal") else 0
    data = _runs.config(
        args["cell"],
        args["seq_len"],
        hidden=args["hidden"],
        batch=args["batch"],
        steps=steps,
        probe_every=probe_every,
    )
    run = _runs.resolve(data)
    torch.manual_seed(0)
    dataset, _, model = build(run, torch.device("cpu"))  # warm: imports, allocator, data
    x, _ = next(dataset.batches("train", args["batch"]))
    before = _status("VmRSS")
    exact = _reset_peak()
    if args["mode"] == "minimal":
        minimal_probed_steps(run, steps)
    else:
        _runs.train_timed(run)
    peak = _status("VmHWM")
    return {
        "peak_above_start_mb": (peak - before) / MB,
        "rss_start_mb": before / MB,
        "peak_reset": exact,
        "saved_probed_mb": saved_bytes(model, x, True) / MB,
        "saved_unprobed_mb": saved_bytes(model, x, False) / MB,
        "probe_mb": args["seq_len"] * args["batch"] * args["hidden"] * 4 / MB,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Per cell: unprobed, probed and minimal probed, in fresh processes, interleaved."""
    share, started = CpuShare(), time.perf_counter()
    if quick:
        sizes = {"seq_len": 100, "hidden": 32, "batch": 8, "steps": 3}
        cells, reps = ["lstm"], 1
    else:
        sizes = {"seq_len": 1000, "hidden": 256, "batch": 64, "steps": 3}
        cells, reps = ["rnn", "lstm"], 1  # peaks repeat to ~1%: one process of each suffices
    rows: list[Row] = []
    details: dict[str, Any] = {}
    for cell in cells:
        args = {"cell": cell, **sizes}
        modes = ("unprobed", "probed", "minimal")
        runs = interleave(
            {mode: partial(run_child, __name__, {**args, "mode": mode}) for mode in modes}, reps
        )
        peak = {mode: median([r["peak_above_start_mb"] for r in rs]) for mode, rs in runs.items()}
        first = runs["probed"][0]
        details[cell] = runs
        needs = first["saved_probed_mb"] + first["probe_mb"]  # saved tensors + the probe's grad
        rows.append(
            Row(
                case=f"{cell}: trial probed every step",
                value=peak["probed"],
                unit="MB above start",
                baseline=peak["unprobed"],
                baseline_label="unprobed (fused) trial",
                ratio=peak["probed"] / peak["unprobed"],
                extra={
                    "autograd_saved_probed_mb": first["saved_probed_mb"],
                    "autograd_saved_unprobed_mb": first["saved_unprobed_mb"],
                    "probe_tensor_mb": first["probe_mb"],
                },
            )
        )
        ratio = peak["probed"] / peak["minimal"]
        excess = peak["probed"] - peak["minimal"]
        rows.append(
            Row(
                case=f"{cell}: probed trial vs the least a probed step keeps",
                value=peak["probed"],
                unit="MB above start",
                baseline=peak["minimal"],
                baseline_label="minimal probed loop",
                ratio=ratio,
                target=f"<= {TARGET:g}x",
                ok=ratio <= TARGET,
                extra={
                    "backward_needs_mb": needs,
                    "excess_mb": excess,
                    "excess_in_probe_tensors": excess / first["probe_mb"],
                },
            )
        )
    method = (
        f"T={sizes['seq_len']}, hidden {sizes['hidden']}, batch {sizes['batch']}, "
        f"{sizes['steps']} steps, 1 torch thread; a fresh process per measurement, {reps} of "
        "each interleaved, medians. Peak RSS (VmHWM, reset after the build) minus the RSS "
        "before training. 'Backward needs' = the storages autograd saves in a probed forward "
        "plus the probe's gradient."
    )
    return result(
        NAME,
        TITLE,
        method,
        rows,
        quick=quick,
        share=share,
        started=started,
        details=details,
    )


if __name__ == "__main__":
    child_main(child)
