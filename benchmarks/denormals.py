"""4. Denormals: vanishing gradients underflow into denormal floats, which CPUs handle slowly.

Flushing is process-wide and must be set before any parallel op, so each setting runs in a fresh
process: ``train()`` with the default config (which flushes) against ``train.flush_denormal:
false``. Each child also takes one probed step on a fresh model and counts, in dL/dh_t, the
entries that are denormal and those that are exactly zero, and reports what the gradient curve
said (``grad/underflow``, ``grad/log10_ratio`` at the last probe): with flushing, underflow must
show up as zeros that the curve counts, not vanish from the record.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks import _runs
from benchmarks._timing import CpuShare, Row, child_main, interleave, median, result, run_child

NAME = "denormals"
TITLE = "Denormals: flushing them (the default) vs not"
NOISE = 1.15  # MEASURED.md: ratios under ~1.15 are within this machine's noise


def penalty(repeat: int = 20) -> dict[str, float]:
    """This CPU's cost of denormal inputs: time on denormal values over time on normal ones.

    Only meaningful in a process that does not flush (a flushed denormal is just a zero).
    """
    import torch

    def best(value: float) -> dict[str, float]:
        x = torch.full((1 << 20,), value)
        a, b = torch.full((256, 256), 0.5), torch.full((256, 1024), value)
        ops = {"mul": lambda: x * 0.9, "matmul": lambda: a @ b, "tanh": lambda: torch.tanh(x)}
        times = {}
        for name, op in ops.items():
            runs = []
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(repeat):
                    op()
                runs.append(time.perf_counter() - start)
            times[name] = min(runs)
        return times

    normal, denormal = best(1e-3), best(1e-39)
    return {name: denormal[name] / normal[name] for name in normal}


def child(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: train with or without flushing, then count denormals in a probe."""
    import torch

    from rnnlab.run import TrainConfig, build, flow_curve, summarize

    steps = args["steps"]
    extra = {} if args["mode"] == "default" else {"flush_denormal": args["mode"] == "on"}
    data = _runs.config(
        args["cell"],
        args["seq_len"],
        hidden=args["hidden"],
        batch=args["batch"],
        steps=steps,
        probe_every=steps,  # probes at step 0 and the last only: outside the timed steps
        **extra,
    )
    run = _runs.resolve(data)
    result_, times = _runs.train_timed(run)
    torch.manual_seed(1)
    dataset, _, model = build(run, torch.device("cpu"))
    x, y = next(dataset.batches("train", args["batch"]))
    out, probes = model(x, probe=True)
    dataset.loss(out, y).backward()
    grad = probes[0].grad
    assert grad is not None
    tiny = torch.finfo(grad.dtype).tiny
    curve = summarize(flow_curve(probes[0]))
    return {
        "step_s": median(times),
        "penalty": penalty(),
        "default_flush": TrainConfig().flush_denormal,
        "denormal_fraction": float(((grad != 0) & (grad.abs() < tiny)).float().mean()),
        "zero_fraction": float((grad == 0).float().mean()),
        "probe_underflow": curve.underflow,
        "probe_log10_ratio": curve.log10_ratio,
        "train_underflow": result_.metrics.get("grad/underflow"),
        "train_log10_ratio": result_.metrics.get("grad/log10_ratio"),
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Fresh processes, default (flushing) and ``flush_denormal: false``, interleaved."""
    share, started = CpuShare(), time.perf_counter()
    if quick:
        args = {"cell": "lstm", "seq_len": 100, "hidden": 16, "batch": 8, "steps": 4}
        reps = 1
    else:
        args = {"cell": "lstm", "seq_len": 500, "hidden": 128, "batch": 64, "steps": 7}
        reps = 2
    runs = interleave(
        {
            "default": lambda: run_child(__name__, {**args, "mode": "default"}),
            "off": lambda: run_child(__name__, {**args, "mode": "off"}),
        },
        reps,
    )
    on, off = runs["default"], runs["off"]
    slow = [b["step_s"] / a["step_s"] for a, b in zip(on, off, strict=True)]
    first_on, first_off = on[0], off[0]
    case = f"{args['cell']} T={args['seq_len']}"
    ratio = median([1 / s for s in slow])
    penalty_off = first_off["penalty"]
    rows = [
        Row(
            case=f"{case}: training step, default config",
            value=median([r["step_s"] for r in on]) * 1000,
            unit="ms/step",
            baseline=median([r["step_s"] for r in off]) * 1000,
            baseline_label="flush_denormal: false",
            ratio=ratio,
            target=f"default flushes; <= {NOISE:g}x",
            ok=bool(first_on["default_flush"]) and ratio <= NOISE,
            extra={"slowdown_without_flushing": median(slow), "reps": reps},
        ),
        Row(
            case="this CPU's penalty on denormal inputs, not flushed (mul / matmul / tanh)",
            value=max(penalty_off.values()),
            unit="x (the worst op)",
            extra={"per_op": penalty_off, "flushed_process": first_on["penalty"]},
        ),
        Row(
            case=f"{case}: denormal entries of dL/dh_t, flushed",
            value=first_on["denormal_fraction"] * 100,
            unit="%",
            baseline=first_off["denormal_fraction"] * 100,
            baseline_label="not flushed",
            target="0 when flushed",
            ok=first_on["denormal_fraction"] == 0.0,
            extra={
                "zero_fraction_flushed": first_on["zero_fraction"],
                "zero_fraction_not_flushed": first_off["zero_fraction"],
            },
        ),
        Row(
            case=f"{case}: steps whose dL/dh_t norm underflowed (grad/underflow), flushed",
            value=first_on["probe_underflow"] * 100,
            unit="%",
            baseline=first_off["probe_underflow"] * 100,
            baseline_label="not flushed",
            target="reported (> 0 where zeros)",
            ok=(first_on["probe_underflow"] > 0) == (first_on["zero_fraction"] > 0),
            extra={
                "log10_ratio_flushed": first_on["probe_log10_ratio"],
                "log10_ratio_not_flushed": first_off["probe_log10_ratio"],
                "train_underflow_flushed": first_on["train_underflow"],
                "train_log10_ratio_flushed": first_on["train_log10_ratio"],
            },
        ),
    ]
    method = (
        f"{case}, batch {args['batch']}, hidden {args['hidden']}, 1 torch thread, a fresh process "
        f"per setting, {reps} of each interleaved. Step: median of `train()`'s steps 1..N-2 "
        "(unprobed, fused). Then one probed step on a fresh model: the share of dL/dh_t entries "
        "that are denormal (0 < |g| < 1.18e-38) and the curve's underflow fraction."
    )
    worst = max(penalty_off.values())
    notes = [
        f"Without flushing a step took {median(slow):.2f}x the flushed one here; the default "
        f"config flushes (`train.flush_denormal` defaults to {first_on['default_flush']}).",
        f"This CPU's worst penalty on denormal inputs was {worst:.2f}x: "
        + (
            "it handles denormals at full speed, so flushing cannot gain much on it; CPUs that "
            "trap denormals in microcode (MEASURED.md saw a 9.5x slower LSTM step) gain a lot."
            if worst < NOISE
            else "flushing is what keeps vanishing-gradient steps at full speed."
        ),
        "Flushed values become exactly 0: the curve records them as underflow and "
        "`grad/log10_ratio` becomes a bound (float32's smallest normal replaces the zeros).",
    ]
    return result(NAME, TITLE, method, rows, quick=quick, share=share, started=started, notes=notes)


if __name__ == "__main__":
    child_main(child, prepare=False)  # the child sets flushing itself, or not
