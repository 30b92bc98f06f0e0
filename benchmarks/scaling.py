"""5. Sweep scaling: trials per hour with 1 and 2 CPU workers, and the time slots stand idle.

The real ``rnnlab sweep`` command runs a small grid in a temporary folder (its own ``mlflow.db``
and Optuna journal), once with ``--workers 1`` and once with ``--workers 2``, alternating. rnnlab
divides the cores between the workers (2 torch threads for one worker, 1 each for two).

Idle slot time comes from the sweep's own MLflow record: each trial's child run carries its slot
(``rnnlab.slot``) and its start and end. A slot is idle before its first trial (the head: worker
start-up), between two trials (the gap: the coordinator recording one trial, the worker building
the next) and after its last trial until the command exits (the tail).

On a GPU the flagship sweep (experiments/vanishing.yaml, one seed and fewer steps) runs with
rnnlab's plan (one slot per visible GPU), with two slots sharing the GPU (``--workers 2``) and, for
comparison, on the machine's CPU cores alone (one slot per core, ``train.device=cpu``).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import textwrap
import time
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks._timing import ROOT, CpuShare, Row, child_env, devices, interleave, median, result

NAME = "scaling"
TITLE = "Sweep scaling: trials/hour with 1 vs 2 CPU workers, and idle slot time"
TARGET = 1.7
GAP_TARGET_S = 1.0  # "no idle time but the final tail": a slot goes straight to its next trial
FLAGSHIP = ROOT / "experiments" / "vanishing.yaml"
# the flagship's grid with one seed, 46 trials of 200 steps instead of 92 of 1000: a few minutes
FLAGSHIP_SETS = ("train.steps=200", "sweep.seeds=[0]")
FLAGSHIP_QUICK_SETS = (
    "train.steps=20",
    "sweep.seeds=[0]",
    "train.eval_every=10",
    "train.probe_every=10",
)

SWEEP = """\
name: scaling
seed: 0
dataset: {{name: adding, seq_len: {seq_len}, val_size: 200}}
cell: {{name: rnn, hidden_size: {hidden}}}
train:
  steps: {steps}
  batch_size: 64
  lr: 0.01
  eval_every: {every}
  probe_every: {every}
  log_every: 10
  device: cpu
sweep:
  sampler: grid
  seeds: {seeds}
  pruner: none
  space:
    cell: [{{name: rnn}}, {{name: gru}}]
"""


def rnnlab_command() -> list[str]:
    """The installed ``rnnlab`` console script next to this Python."""
    from benchmarks.startup import script

    return [script("rnnlab")]


def gap_row(case: str, gaps: list[float]) -> Row:
    """The longest idle gap between two trials of a slot, against the target."""
    longest = max(gaps, default=0.0)
    return Row(
        case=case,
        value=longest,
        unit="s",
        baseline=median(gaps) if gaps else None,
        baseline_label="median gap",
        target=f"< {GAP_TARGET_S:g} s (no idle but the tail)",
        ok=longest < GAP_TARGET_S,
        extra={"gaps_s": gaps},
    )


def slot_times(folder: Path) -> dict[str, list[tuple[float, float]]]:
    """slot -> (start, end) in epoch seconds of each trial's MLflow run, by start (slots sharing
    a GPU have labels of their own: ``gpu 0``, ``gpu 0 #2`` ...)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    slots: dict[str, list[tuple[float, float]]] = {}
    for experiment in client.search_experiments():
        for found in client.search_runs([experiment.experiment_id], max_results=1000):
            slot = found.data.tags.get("rnnlab.slot")
            if slot is None or found.info.end_time is None:
                continue  # the sweep's parent run
            span = (found.info.start_time / 1000, found.info.end_time / 1000)
            slots.setdefault(slot, []).append(span)
    return {slot: sorted(spans) for slot, spans in sorted(slots.items())}


def sweep_once(workers: int | None, text: str, *extra: str) -> dict[str, Any]:
    """Run the sweep in a fresh folder (``workers`` None: the sweep's own ``workers``); wall time,
    trials and each slot's idle time."""
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        folder = Path(tmp)
        (folder / "sweep.yaml").write_text(text)
        env = child_env()
        env.pop("MLFLOW_TRACKING_URI", None)  # MLflow's default: ./mlflow.db in the folder
        start = time.time()
        plan = [] if workers is None else ["--workers", str(workers)]
        done = subprocess.run(
            [*rnnlab_command(), "sweep", "sweep.yaml", *plan, *extra],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        end = time.time()
        if done.returncode != 0:
            raise RuntimeError(f"rnnlab sweep failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")
        slots = slot_times(folder)
    trials = sum(len(spans) for spans in slots.values())
    span = max(s[-1][1] for s in slots.values()) - min(s[0][0] for s in slots.values())
    gaps = [b[0] - a[1] for spans in slots.values() for a, b in zip(spans, spans[1:], strict=False)]
    return {
        "wall_s": end - start,
        "trials": trials,
        "trials_per_hour": trials / (end - start) * 3600,
        "busy_s": sum(b - a for spans in slots.values() for a, b in spans),
        "head_s": [spans[0][0] - start for spans in slots.values()],
        "gaps_s": gaps,
        "tail_s": [end - spans[-1][1] for spans in slots.values()],
        "first_to_last_s": span,
        "trials_per_span_hour": trials / span * 3600,
    }


def speedup_over(
    base: list[dict[str, Any]], other: list[dict[str, Any]], key: str = "trials_per_hour"
) -> float:
    """Median over paired runs of other's trials/hour over base's."""
    pairs = zip(base, other, strict=True)
    return median([b[key] / a[key] for a, b in pairs])


def cpu_sweeps(quick: bool, share: CpuShare) -> tuple[list[Row], list[str], str, dict[str, Any]]:
    """``--workers 1``, ``--workers 2`` and one worker with one thread on the same CPU grid: the
    rows, notes, method and runs."""
    if quick:
        sizes = {"seq_len": 10, "hidden": 8, "steps": 20, "every": 10, "seeds": "[0]"}
        reps = 1
    else:
        # 8 trials of ~7 s: a sweep's fixed start-up (~5-6 s before the first trial: imports,
        # a new MLflow store, the workers' torch) must not be most of what is measured
        sizes = {"seq_len": 50, "hidden": 64, "steps": 800, "every": 100, "seeds": "[0, 1, 2, 3]"}
        reps = 1
    text = textwrap.dedent(SWEEP.format(**sizes))
    variants = {
        "1": partial(sweep_once, 1, text),  # rnnlab's plan: the one worker gets every core
        "2": partial(sweep_once, 2, text),
    }
    if not quick:
        variants["1x1"] = partial(sweep_once, 1, text, "--set", "train.threads=1")
    runs = interleave(variants, reps)
    one, two, single = runs["1"], runs["2"], runs.get("1x1", [])
    speedup = speedup_over(one, two)
    gaps = [g for r in two + one + single for g in r["gaps_s"]]
    rows = [
        Row(
            case=f"{one[0]['trials']} trials, 2 workers x 1 thread",
            value=median([r["trials_per_hour"] for r in two]),
            unit="trials/h",
            baseline=median([r["trials_per_hour"] for r in one]),
            baseline_label="1 worker x 2 threads",
            ratio=speedup,
            target=f">= {TARGET:g}x",
            ok=speedup >= TARGET,
            extra={"wall_s_2": [r["wall_s"] for r in two], "wall_s_1": [r["wall_s"] for r in one]},
        ),
        gap_row("idle gap between a slot's trials (max over all)", gaps),
        Row(
            case="idle share of slot time, 2 workers (gaps / slot time)",
            value=100 * median([sum(r["gaps_s"]) / (2 * r["first_to_last_s"]) for r in two]),
            unit="%",
            extra={"busy_s": [r["busy_s"] for r in two]},
        ),
        Row(
            case="final tail, 2 workers (slot done, sweep still running; max)",
            value=median([max(r["tail_s"]) for r in two]),
            unit="s",
            extra={"tail_s": [r["tail_s"] for r in two]},
        ),
        Row(
            case="head: command start to a slot's first trial (median)",
            value=median([h for r in two for h in r["head_s"]]),
            unit="s",
            baseline=median([h for r in one for h in r["head_s"]]),
            baseline_label="1 worker",
        ),
    ]
    if single:
        span = speedup_over(single, two, "trials_per_span_hour")
        rows.insert(
            1,
            Row(
                case="the same, counting only from the first trial's start to the last one's end",
                value=median([r["trials_per_span_hour"] for r in two]),
                unit="trials/h",
                baseline=median([r["trials_per_span_hour"] for r in single]),
                baseline_label="1 worker x 1 thread",
                ratio=span,
                extra={
                    "trial_s_2": [r["busy_s"] / r["trials"] for r in two],
                    "trial_s_1x1": [r["busy_s"] / r["trials"] for r in single],
                },
            ),
        )
        rows.insert(
            1,
            Row(
                case=f"{one[0]['trials']} trials, 2 workers x 1 thread, vs 1 worker x 1 thread",
                value=median([r["trials_per_hour"] for r in two]),
                unit="trials/h",
                baseline=median([r["trials_per_hour"] for r in single]),
                baseline_label="1 worker x 1 thread (`--set train.threads=1`)",
                ratio=speedup_over(single, two),
                extra={"wall_s_1x1": [r["wall_s"] for r in single]},
            ),
        )
    notes = [
        "No GPU on this machine: slots per GPU were not measured (rnnlab plans one trial per "
        "visible GPU)."
        if not _has_gpu()
        else "GPU machine: rnnlab plans one slot (one trial at a time) per visible GPU.",
        *(
            [
                f"Other processes used {100 * (share.others() or 0):.0f}% of the machine's CPU "
                "capacity meanwhile, so two workers could not each have a core: a trial took "
                f"{median([r['busy_s'] / r['trials'] for r in two]):.1f} s with 2 workers against "
                f"{median([r['busy_s'] / r['trials'] for r in single]):.1f} s for one worker with "
                "one thread. One worker with rnnlab's 2 threads was slowest of all: two threads "
                "on two contended cores wait on each other (MEASURED.md saw 15x)."
            ]
            if single and (share.others() or 0) > 0.2
            else []
        ),
        "A trial's span is its MLflow child run: from the moment the coordinator records its "
        "start (after the worker has built the model) to its termination (after its artifacts "
        "were copied); a gap is the time between two trials of the same slot.",
    ]
    method = (
        f"`rnnlab sweep` on a grid of rnn and gru x seeds {sizes['seeds']} (adding "
        f"T={sizes['seq_len']}, hidden {sizes['hidden']}, {sizes['steps']} steps), a fresh "
        f"folder per run (MLflow's default sqlite store, the Optuna journal), {reps} run(s) of "
        "each variant alternating: `--workers 1` (rnnlab gives it both cores: 2 torch threads), "
        "`--workers 2` (1 thread each) and `--workers 1 --set train.threads=1`. trials/h = "
        "trials / wall time of the whole command."
    )
    return rows, notes, method, runs


def flagship(quick: bool) -> tuple[list[Row], list[str], str, dict[str, Any]]:
    """The flagship sweep on the GPU: rnnlab's plan (one slot per visible GPU), two slots sharing
    the GPU, and the CPU cores alone (one slot per core): the rows, notes, method and runs."""
    from rnnlab.sweep import cpu_cores

    sets = FLAGSHIP_QUICK_SETS if quick else FLAGSHIP_SETS
    overrides = [part for assignment in sets for part in ("--set", assignment)]
    text = FLAGSHIP.read_text()
    cores = cpu_cores()
    variants = {
        "gpu": partial(sweep_once, None, text, *overrides),  # workers: auto in the file
        "gpu x2": partial(sweep_once, 2, text, *overrides),
        "cpu": partial(sweep_once, cores, text, *overrides, "--set", "train.device=cpu"),
    }
    runs = interleave(variants, 1)
    gpu, shared, cpu = runs["gpu"][0], runs["gpu x2"][0], runs["cpu"][0]
    trials = gpu["trials"]
    gaps = gpu["gaps_s"]
    rows = [
        Row(
            case=f"flagship sweep, {trials} trials: rnnlab's plan, 1 slot per GPU (cuda)",
            value=gpu["trials_per_hour"],
            unit="trials/h",
            baseline=cpu["trials_per_hour"],
            baseline_label=f"{cores} CPU slots x 1 thread",
            ratio=gpu["trials_per_hour"] / cpu["trials_per_hour"],
            extra={"wall_s": gpu["wall_s"], "wall_s_cpu": cpu["wall_s"]},
        ),
        Row(
            case="the same, 2 slots sharing the GPU (`--workers 2`)",
            value=shared["trials_per_hour"],
            unit="trials/h",
            baseline=gpu["trials_per_hour"],
            baseline_label="1 slot (rnnlab's plan)",
            ratio=shared["trials_per_hour"] / gpu["trials_per_hour"],
            extra={"wall_s": shared["wall_s"]},
        ),
        Row(
            case="a trial on the GPU, 1 slot (mean span)",
            value=gpu["busy_s"] / trials,
            unit="s",
            baseline=cpu["busy_s"] / cpu["trials"],
            baseline_label="on one CPU thread",
            ratio=(gpu["busy_s"] / trials) / (cpu["busy_s"] / cpu["trials"]),
            extra={"trial_s_2_slots": shared["busy_s"] / shared["trials"]},
        ),
        gap_row("idle gap between the GPU slot's trials (max)", gaps),
        Row(
            case="head: command start to the GPU slot's first trial",
            value=median(gpu["head_s"]),
            unit="s",
            baseline=median(cpu["head_s"]),
            baseline_label=f"{cores} CPU slots (median)",
        ),
    ]
    notes: list[str] = []
    method = (
        f"`rnnlab sweep experiments/vanishing.yaml --set {' --set '.join(sets)}` (the flagship's "
        f"grid, {trials} trained trials; the incompatible combinations are recorded, not "
        "trained), a fresh folder per run, one run of each in turn: rnnlab's plan (`workers: "
        "auto`, one slot per visible GPU, `device: auto`), `--workers 2` (two slots on the one "
        f"GPU, {max(1, cores // 2)} thread(s) each) and `--workers {cores} --set train.device=cpu` "
        "(one slot per CPU core, one thread each). trials/h = trained trials / wall time of the "
        "whole command."
    )
    return rows, notes, method, runs


def run(quick: bool = False, only: str | None = None) -> dict[str, Any]:
    """The CPU grid with 1 and 2 workers; on a GPU, the flagship sweep too (``only``: the CPU
    part or the GPU part alone)."""
    share, started = CpuShare(), time.perf_counter()
    where = devices(only)
    rows: list[Row] = []
    notes: list[str] = []
    methods: list[str] = []
    details: dict[str, Any] = {"cpu_cores": os.cpu_count()}
    if "cpu" in where:
        found, said, method, runs = cpu_sweeps(quick, share)
        rows, notes, details["runs"] = found, said, runs
        methods.append(method)
    if "cuda" in where:
        found, said, method, runs = flagship(quick)
        rows, notes, details["flagship_runs"] = rows + found, notes + said, runs
        methods.append(("On the GPU: " if methods else "") + method)
    title = TITLE if where == ["cpu"] else f"{TITLE}; the flagship sweep on the GPU"
    return result(
        NAME,
        title,
        " ".join(methods),
        rows,
        quick=quick,
        share=share,
        started=started,
        notes=notes,
        details=details,
        devices=where,
    )


def _has_gpu() -> bool:
    from benchmarks._timing import gpu

    return gpu() is not None
