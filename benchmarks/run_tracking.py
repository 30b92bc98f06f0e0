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
import threading
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


def _timed(folder: Path, command: list[str]) -> dict[str, float]:
    """One whole process: ``exit_s`` when ``rnnlab run`` exits (a terminal's prompt is back),
    ``done_s`` when its output closes. The MLflow helper holds that output until it has drawn
    and logged the PNGs, after the run has ended (rnnlab.run._background), so ``done_s`` is when
    a caller that reads the output (a pipe, ``subprocess.run``) gets it and the PNGs are in."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=folder,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    stream = process.stdout
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(stream.read()))
    reader.start()  # reads to EOF; the wait below is the process's own exit
    code = process.wait(timeout=900)
    exited = time.perf_counter() - start
    reader.join(timeout=900)
    done = time.perf_counter() - start
    stream.close()
    if code != 0:
        text = b"".join(output).decode(errors="replace")
        raise RuntimeError(f"{' '.join(command)} failed ({code}): {text[-2000:]}")
    return {"exit_s": exited, "done_s": done}


def measure(folder: Path, quick: bool) -> dict[str, Any]:
    """The three ways' times (``exit_s``, ``done_s``: :func:`_timed`; in the order run) and
    the warm-up's."""
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
    """The target row (``rnnlab run`` tracked: its exit, when a terminal's prompt is back), the
    same run until its output closed (the PNGs logged), and the synchronous baseline."""
    times = measured["times_s"]
    bare = [t["exit_s"] for t in times["untracked"]]
    out = []
    for way, key, label in (
        ("tracked", "exit_s", "`rnnlab run` tracked (MLflow helper process) over `--no-track`"),
        ("tracked", "done_s", "the same, until its output closed (the PNGs in the run)"),
        ("synchronous", "exit_s", "before issue 22: synchronous MlflowTracker over `--no-track`"),
    ):
        took = [t[key] for t in times[way]]
        ratios = [a / b for a, b in zip(took, bare, strict=True)]
        extra = median(took) - median(bare)
        ratio = median(ratios)
        target = way == "tracked" and key == "exit_s"
        out.append(
            Row(
                case=f"single run: {label}",
                value=median(took),
                unit="s",
                baseline=median(bare),
                baseline_label="`rnnlab run --no-track`",
                ratio=ratio,
                target=(
                    f"<= {TARGET_RATIO:g}x and <= +{TARGET_EXTRA_S:g} s" if target else "(info)"
                ),
                ok=(ratio <= TARGET_RATIO and extra <= TARGET_EXTRA_S) if target else None,
                extra={
                    "times_s": took,
                    "untracked_s": bare,
                    "ratios": ratios,
                    "extra_s": extra,
                    "extra_per_turn_s": [a - b for a, b in zip(took, bare, strict=True)],
                },
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
        f"{reps} each after a tracked warm-up that created the sqlite store; timed to the "
        f"process's exit (the prompt back) and to its output closing (the helper, which holds "
        f"it, has logged the PNGs); medians of the per-turn ratios and of the times."
    )
