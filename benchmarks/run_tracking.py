"""Benchmark 6's single-run case (issue 22): ``rnnlab run`` tracked against ``--no-track``.

Whole processes, as a user runs them (``sys.executable -m rnnlab run FILE``), in a folder whose
sqlite store already exists (one tracked warm-up run creates it: MLflow's migrations are a
one-off). Three ways, taking turns, each ``reps`` times:

* ``untracked``: ``rnnlab run --no-track``;
* ``tracked``: ``rnnlab run`` (the MLflow helper process, rnnlab.run._background);
* ``synchronous``: the same run through the synchronous ``MlflowTracker`` in the training process,
  what ``rnnlab run`` did before issue 22 (:data:`SYNCHRONOUS`: plugins, config, train, summary;
  no progress display), the baseline measured in the same run on the same loaded machine.

The run is the issue's: an LSTM on the adding problem, T=100, hidden 64, batch 64, 300 Adam
steps, the probes at the first and the last step, one torch thread.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks._timing import Row, child_env, interleave, median

TARGET_RATIO = 1.15  # the goal: within 15% of --no-track
TARGET_EXTRA_S = 1.0  # and within +1 s on any run

SYNCHRONOUS = """\
import sys
from rnnlab.plugins import make_plugin_manager
from rnnlab.run import MlflowTracker, load_run_config, summary_line, train
tracker = MlflowTracker()
run = load_run_config(sys.argv[1], make_plugin_manager().registry(), [])
result = train(run, tracker)
print(summary_line(result))
print(result.where)
"""


def config(quick: bool) -> dict[str, Any]:
    steps = 30 if quick else 300
    return {
        "name": "single",
        "seed": 0,
        "dataset": {"name": "adding", "seq_len": 20 if quick else 100},
        "cell": {"name": "lstm", "hidden_size": 16 if quick else 64},
        "train": {
            "steps": steps,
            "batch_size": 64,
            "optimizer": "adam",
            "lr": 1e-3,
            "probe_every": steps,  # step 0, and the last step (always probed)
            "threads": 1,
            "device": "cpu",
        },
    }


def _timed(folder: Path, command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=folder, env=child_env(), capture_output=True, text=True, timeout=900
    )
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return took


def measure(folder: Path, quick: bool) -> dict[str, Any]:
    """The three ways' wall times (seconds, in the order run) and the warm-up's."""
    path = folder / "single.yaml"
    path.write_text(yaml.safe_dump(config(quick), sort_keys=False))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    rnnlab = [sys.executable, "-m", "rnnlab", "run", path.name]
    warm_up = _timed(folder, [*rnnlab, "--tracking-uri", uri])  # creates the store
    times = interleave(
        {
            "untracked": lambda: _timed(folder, [*rnnlab, "--no-track"]),
            "tracked": lambda: _timed(folder, [*rnnlab, "--tracking-uri", uri]),
            "synchronous": lambda: _timed(folder, [sys.executable, "-c", SYNCHRONOUS, path.name]),
        },
        1 if quick else 3,
    )
    return {"warm_up_s": warm_up, "times_s": times, "config": config(quick)}


def rows(measured: dict[str, Any]) -> list[Row]:
    times = measured["times_s"]
    bare = median(times["untracked"])
    out = []
    for way, label in (
        ("tracked", "`rnnlab run` tracked (MLflow helper process) over `--no-track`"),
        ("synchronous", "before issue 22: synchronous MlflowTracker over `--no-track`"),
    ):
        ratios = [a / b for a, b in zip(times[way], times["untracked"], strict=True)]
        extra = median(times[way]) - bare
        ratio = median(ratios)
        target = way == "tracked"
        out.append(
            Row(
                case=f"single run: {label}",
                value=median(times[way]),
                unit="s",
                baseline=bare,
                baseline_label="`rnnlab run --no-track`",
                ratio=ratio,
                target=(
                    f"<= {TARGET_RATIO:g}x or <= +{TARGET_EXTRA_S:g} s" if target else "(baseline)"
                ),
                ok=(ratio <= TARGET_RATIO or extra <= TARGET_EXTRA_S) if target else None,
                extra={"times_s": times[way], "ratios": ratios, "extra_s": extra},
            )
        )
    return out


def method(measured: dict[str, Any]) -> str:
    c = measured["config"]
    reps = len(measured["times_s"]["tracked"])
    return (
        f" Single run (issue 22): {c['cell']['name']}, hidden {c['cell']['hidden_size']}, adding "
        f"T={c['dataset']['seq_len']}, batch {c['train']['batch_size']}, {c['train']['steps']} "
        f"Adam steps, probes at the first and the last step, 1 torch thread; whole processes "
        f"(`python -m rnnlab run`), untracked, tracked and the synchronous tracker taking turns, "
        f"{reps} each after a tracked warm-up that created the sqlite store; medians of the "
        f"per-turn ratios."
    )
