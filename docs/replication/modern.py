"""8. Modern cells (2019-2024) against the tanh RNN and the LSTM: adding, permuted digits, copy.

Profiles ``modern.yaml`` (CPU: adding at T=200 and 1000, permuted sequential digits, every cell)
and, paper-sized, ``modern.paper.yaml`` (psMNIST at coRNN's, UnICORNN's and LEM's published
settings) with the paper-only ``modern/adding.paper.yaml`` (LEM at T=10000) and
``modern/copy.paper.yaml`` (expRNN's copy at T=1000). One analysis serves all of them: it groups
the trials by task (read from each run's resolved params) and cell, and checks each claim whose
task the sweeps hold. The criteria were fixed before any of these sweeps ran.
"""

from __future__ import annotations

import math

from replication.copy_memory import copy_baseline
from replication.criteria import BEATS, SOLVED
from replication.parts import Check, Finding, Result, held_out, mean, mean_std, seeds_text, table
from replication.reader import Sweep, Trial

NAMES = {
    "rnn": "tanh RNN",
    "lstm": "LSTM",
    "exprnn": "expRNN",
    "cornn": "coRNN",
    "unicornn": "UnICORNN",
    "lem": "LEM",
    "antisymmetric": "AntisymmetricRNN",
    "lipschitz": "Lipschitz RNN",
    "lru": "LRU",
    "mingru": "minGRU",
    "minlstm": "minLSTM",
}
OSCILLATORS = ("coRNN", "UnICORNN", "LEM")
COPY_SOLVED = 0.1  # copy: below 0.1 x the memoryless loss counts as solved (recall learnt)
PAPER = {  # shared/REFERENCES.md, "Modern cells": psMNIST test accuracy %, and the other claims
    "expRNN": "psMNIST 96.6 (512 units); copy T=1000 solved",
    "coRNN": "psMNIST 97.34",
    "UnICORNN": "psMNIST 98.4",
    "LEM": "psMNIST 96.6; adding T=10000: MSE 0.17 -> 2.4e-5",
    "Lipschitz RNN": "psMNIST 96.3",
    "LSTM": "psMNIST 95.11 (as cited by those tables)",
}


def task_of(t: Trial) -> str:
    """``adding T=200``, ``permuted digits``, ``copy T=1000``, from the run's resolved params."""
    name = t.params.get("dataset.name", "")
    if name in ("adding", "copy"):
        return f"{name} T={t.params.get('dataset.seq_len', '?')}"
    permuted = t.params.get("dataset.permute") == "True"
    return f"{'permuted' if permuted else 'sequential'} {name}"


def cell_of(t: Trial) -> str:
    name = t.params.get("cell.name", "")
    return NAMES.get(name, name)


def _groups(sweeps: list[Sweep]) -> dict[str, dict[str, list[Trial]]]:
    """task -> cell -> its trials (incompatible ones left out), tasks and cells in run order."""
    found: dict[str, dict[str, list[Trial]]] = {}
    for s in sweeps:
        for t in s.trials:
            if t.outcome != "incompatible" and t.params:
                found.setdefault(task_of(t), {}).setdefault(cell_of(t), []).append(t)
    return found


def _accuracy(trials: list[Trial]) -> float:
    return mean(100 * t.metrics.get("val/accuracy", math.nan) for t in trials)


def _status(task: str, trials: list[Trial]) -> str:
    done = [t for t in trials if t.outcome == "completed"]
    diverged = sum(t.outcome == "diverged" for t in trials)
    if diverged:
        return f"{diverged} of {len(trials)} diverged"
    if task.startswith("adding"):
        return "solved" if done and all(t.loss < SOLVED for t in done) else "not solved"
    if task.startswith("copy"):
        limit = COPY_SOLVED * copy_baseline(int(task.split("T=")[1]))
        return "solved" if done and all(t.loss < limit for t in done) else "not solved"
    return f"{_accuracy(done):.1f}% val accuracy"


def modern(sweeps: list[Sweep], figure: str) -> Result:
    groups = _groups(sweeps)
    rows = []
    for task, cells in groups.items():
        for cell, trials in cells.items():
            firsts = [t.first_ratio for t in trials if t.first_ratio is not None]
            rows.append(
                [
                    task,
                    cell,
                    mean_std(t.loss for t in trials if t.outcome == "completed"),
                    seeds_text(trials, lambda t: t.loss),
                    _status(task, trials),
                    f"{mean(firsts):.1f}" if firsts else "-",
                    f"{mean(t.ratio for t in trials):.1f}",
                    held_out(trials),
                    PAPER.get(cell, "-"),
                ]
            )
    head = [
        "task",
        "cell",
        "val loss",
        "per seed",
        "status",
        "log10 ratio at init",
        "log10 ratio at the end",
        "test loss",
        "paper",
    ]
    return Result(table(head, rows), checks(groups))


def checks(groups: dict[str, dict[str, list[Trial]]]) -> list[Check]:
    """The claims whose tasks the sweeps hold, each as stated before the sweeps ran."""
    out: list[Check] = []
    adding = sorted((t for t in groups if t.startswith("adding")), key=lambda t: int(t[9:]))
    if adding:  # a claim whose arm has not run yet fails, saying so
        task = adding[-1]
        lem = [t for t in groups[task].get("LEM", []) if t.outcome == "completed"]
        out.append(
            Check(
                f"LEM solves {task} (val MSE < {SOLVED} on every seed; the paper: T=10000)",
                bool(lem) and all(t.loss < SOLVED for t in lem),
            )
        )
    for task, cells in groups.items():
        if not task.startswith("permuted"):
            continue
        if "LSTM" not in cells:
            out.append(Check(f"coRNN, UnICORNN, LEM beat the LSTM on {task}: no LSTM yet", False))
            continue
        lstm = _accuracy(cells["LSTM"])
        for cell in OSCILLATORS:
            ran = cell in cells
            out.append(
                Check(
                    f"{cell} beats the LSTM on {task} (mean val accuracy over seeds; the paper: "
                    "psMNIST)" + ("" if ran else ": not measured yet"),
                    ran and _accuracy(cells[cell]) > lstm,
                )
            )
    for task, cells in groups.items():
        if not task.startswith("copy") or not {"expRNN", "LSTM"} <= set(cells):
            continue
        base = copy_baseline(int(task.split("T=")[1]))
        exp = [t for t in cells["expRNN"] if t.outcome == "completed"]
        out.append(
            Check(
                f"expRNN solves {task} (val loss < {COPY_SOLVED:g} x the memoryless "
                f"{base:.4f} on every seed) and the LSTM does not (every seed >= {BEATS:g} x)",
                bool(exp)
                and all(t.loss < COPY_SOLVED * base for t in exp)
                and all(t.loss >= BEATS * base for t in cells["LSTM"]),
            )
        )
    return out


def modern_notes(sweeps: list[Sweep], result: Result) -> list[str]:
    groups = _groups(sweeps)
    longest = max((t for t in groups if t.startswith("adding")), key=lambda t: int(t[9:]))
    ratios = ", ".join(
        f"{cell} {mean(t.first_ratio for t in ts if t.first_ratio is not None):.1f}"
        for cell, ts in groups[longest].items()
    )
    return [
        f"The gradient that reaches step 1 at initialisation, {longest} (log10 ||dL/dh_1|| / "
        f"||dL/dh_T||, mean over seeds): {ratios}. This is what each cell's construction "
        "promises (orthogonal, oscillator, stable-by-construction, linear); whether training "
        "uses it is the loss column."
    ]


FINDING = Finding(
    "modern",
    "Modern cells: orthogonal, oscillator, stable and linear recurrences (2019-2024)",
    ("modern",),
    modern,
    "LEM solves the adding problem at T=10000 (the authors' log: MSE 0.17 -> 2.4e-5); coRNN "
    "(97.34), UnICORNN (98.4) and LEM (96.6) beat the LSTM (95.11 as those tables cite it) on "
    "psMNIST; expRNN solves the copy task at T=1000 where the LSTM does not (shared/"
    "REFERENCES.md, 'Modern cells').",
    "Every cell at hidden 32 (the papers: 128 to 512), one optimizer for all (Adam 2e-3; "
    "expRNN's orthogonal parameters at a tenth, its paper's ratio, through its learning-rate "
    "group), clipping at norm 1, batch 32 and 400 steps; the adding problem at T=200 and 1000 "
    "instead of 10000, and scikit-learn's 8x8 digits read pixel by pixel in a fixed permutation "
    "(64 steps) instead of psMNIST (784). The copy claim is left to the paper-sized "
    "modern/copy.paper.yaml. The step budget came from pilot runs of the step cost only "
    "(issue 20's helper log): on the shared 2-core machine an LSTM trial at T=200 took ~130 s "
    "and an expRNN one 200-400 s, so 400 steps is what 99 trials allow, far below what the "
    "papers train; in those pilot trials (adding T=200, tanh RNN, LSTM and expRNN, 3 seeds each) "
    "every run ended at the baseline (val MSE 0.15-0.17). Criteria, fixed before the profile "
    f"runs: LEM's val MSE below {SOLVED} on every seed at the longest T; the mean val accuracy "
    "over seeds of each of coRNN, UnICORNN and LEM above the LSTM's on the permuted task; "
    f"(paper-sized copy) expRNN's val loss below {COPY_SOLVED:g} x the memoryless loss on every "
    f"seed and the LSTM's at or above {BEATS:g} x it on every seed.",
    modern_notes,
    paper_only=("modern/adding", "modern/copy"),
)
