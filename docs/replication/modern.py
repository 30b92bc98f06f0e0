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
import re
from typing import Any

import numpy as np

from replication.copy_memory import copy_baseline
from replication.criteria import ADDING_BASELINE, BEATS, SOLVED
from replication.figures import colour, geometric_mean, pyplot, save
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
    return _task(
        t.params.get("dataset.name", ""),
        t.params.get("dataset.seq_len", "?"),
        t.params.get("dataset.permute", ""),
    )


def _task(name: str, seq_len: str, permute: str) -> str:
    if name in ("adding", "copy"):
        return f"{name} T={seq_len}"
    return f"{'permuted' if permute == 'True' else 'sequential'} {name}"


def _options(label: str) -> tuple[str, dict[str, str]]:
    """A space label's name and options: ``adding[seq_len=200,val_size=256]`` ->
    ``("adding", {"seq_len": "200", "val_size": "256"})`` (rnnlab.sweep.label's form)."""
    found = re.fullmatch(r"([^\[]*)(?:\[(.*)\])?", label)
    name, rest = (found.group(1), found.group(2) or "") if found else (label, "")
    return name, dict(kv.split("=", 1) for kv in rest.split(",") if "=" in kv)


def plan_of(sweeps: list[Sweep]) -> tuple[dict[str, list[str]], int]:
    """Every task -> the cells its sweeps plan, in the files' order, read from the sweeps'
    stored definitions (not from the trials that finished), and the seeds each (task, cell)
    arm plans: the claims and the table count the trials against these, so that a sweep
    stopped early shows which arms are missing instead of judging the ones that ran."""
    out: dict[str, list[str]] = {}
    seeds = 0
    for s in sweeps:
        seeds = max(seeds, len(s.seeds))
        base: dict[str, Any] = s.config["dataset"]
        datasets = s.space.get("dataset") or [str(base["name"])]
        cells = [NAMES.get(c, c) for c in (_options(v)[0] for v in s.space.get("cell", []))]
        cells = cells or [NAMES.get(s.config["cell"]["name"], s.config["cell"]["name"])]
        for value in datasets:
            name, opts = _options(value)
            # a space value merges into the base dataset only when it names the same task
            same = {k: str(v) for k, v in base.items()} if name == base["name"] else {}
            merged = {**same, **opts}
            task = _task(name, merged.get("seq_len", "?"), merged.get("permute", ""))
            arms = out.setdefault(task, [])
            arms += [c for c in cells if c not in arms]
    return out, seeds


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


def _arms(
    plan: dict[str, list[str]], groups: dict[str, dict[str, list[Trial]]]
) -> dict[str, list[str]]:
    """The planned arms, then any arm the trials hold that no plan names (none expected)."""
    out = {task: list(cells) for task, cells in plan.items()}
    for task, cells in groups.items():
        arms = out.setdefault(task, [])
        arms += [c for c in cells if c not in arms]
    return out


def _done(trials: list[Trial]) -> list[Trial]:
    return [t for t in trials if t.outcome == "completed"]


def _accuracy(trials: list[Trial]) -> float:
    """Mean val accuracy (%) of the completed trials; NaN when none completed."""
    return mean(100 * t.metrics.get("val/accuracy", math.nan) for t in _done(trials))


def _short(trials: list[Trial], seeds: int, who: str = "") -> str:
    """Why an arm cannot be judged yet: ``""`` when every planned seed completed, else
    ``"LSTM: 1 of 3 seeds completed"``; a claim about an arm that is short fails."""
    done = len(_done(trials))
    return "" if done >= seeds else f"{who + ': ' if who else ''}{done} of {seeds} seeds completed"


def _status(task: str, trials: list[Trial], seeds: int) -> str:
    done = _done(trials)
    diverged = sum(t.outcome == "diverged" for t in trials)
    ran = "" if len(trials) >= seeds else f" ({len(trials)} of {seeds} seeds ran)"
    if diverged:
        return f"{diverged} of {len(trials)} diverged{ran}"
    if task.startswith("adding"):
        return ("solved" if done and all(t.loss < SOLVED for t in done) else "not solved") + ran
    if task.startswith("copy"):
        limit = COPY_SOLVED * copy_baseline(int(task.split("T=")[1]))
        solved = done and all(t.loss < limit for t in done)
        return ("solved" if solved else "not solved") + ran
    return f"{_accuracy(trials):.1f}% val accuracy{ran}"


def _one(value: float) -> str:
    return f"{value:.1f}" if math.isfinite(value) else "-"


def modern(sweeps: list[Sweep], figure: str) -> Result:
    plan, seeds = plan_of(sweeps)
    groups = _groups(sweeps)
    rows = []
    for task, cells in _arms(plan, groups).items():
        for cell in cells:
            trials = groups.get(task, {}).get(cell, [])
            if not trials:
                rows.append([task, cell, "-", "-", f"not run (0 of {seeds} seeds)", "-", "-", "-"])
                rows[-1].append(PAPER.get(cell, "-"))
                continue
            firsts = [t.first_ratio for t in trials if t.first_ratio is not None]
            rows.append(
                [
                    task,
                    cell,
                    mean_std(t.loss for t in _done(trials)),
                    seeds_text(trials, lambda t: t.loss),
                    _status(task, trials, seeds),
                    _one(mean(firsts)),
                    _one(mean(t.ratio for t in trials)),
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
    shown = _figure(_arms(plan, groups), groups, figure)
    return Result(table(head, rows), checks(groups, plan, seeds), shown)


def checks(
    groups: dict[str, dict[str, list[Trial]]], plan: dict[str, list[str]], seeds: int
) -> list[Check]:
    """The claims whose tasks the sweeps plan, each as stated before the sweeps ran. An arm
    that has fewer completed seeds than planned (not run yet, stopped, diverged) fails the
    claim and the text says so: a claim is judged on every planned seed or not at all."""
    out: list[Check] = []
    adding = sorted((t for t in plan if t.startswith("adding")), key=lambda t: int(t[9:]))
    if adding:  # the longest T the sweeps plan, whether or not it ran
        task = adding[-1]
        lem = groups.get(task, {}).get("LEM", [])
        short = _short(lem, seeds)
        out.append(
            Check(
                f"LEM solves {task} (val MSE < {SOLVED} on every seed; the paper: T=10000): "
                + (f"{short}, " if short else "")
                + f"val MSE {seeds_text(lem, lambda t: t.loss)}",
                not short and all(t.loss < SOLVED for t in lem),
            )
        )
    for task, cells in plan.items():
        if not task.startswith("permuted"):
            continue
        lstm = groups.get(task, {}).get("LSTM", [])
        for cell in OSCILLATORS:
            if cell not in cells:
                continue
            ours = groups.get(task, {}).get(cell, [])
            short = "; ".join(
                x for x in (_short(ours, seeds, cell), _short(lstm, seeds, "LSTM")) if x
            )
            numbers = f"{_accuracy(ours):.1f}% vs {_accuracy(lstm):.1f}%"
            out.append(
                Check(
                    f"{cell} beats the LSTM on {task} (mean val accuracy over seeds; the paper: "
                    f"psMNIST): " + (short or numbers),
                    not short and _accuracy(ours) > _accuracy(lstm),
                )
            )
    for task, cells in plan.items():
        if not task.startswith("copy") or not {"expRNN", "LSTM"} <= set(cells):
            continue
        base = copy_baseline(int(task.split("T=")[1]))
        exp = groups.get(task, {}).get("expRNN", [])
        lstm = groups.get(task, {}).get("LSTM", [])
        short = "; ".join(
            x for x in (_short(exp, seeds, "expRNN"), _short(lstm, seeds, "LSTM")) if x
        )
        out.append(
            Check(
                f"expRNN solves {task} (val loss < {COPY_SOLVED:g} x the memoryless "
                f"{base:.4f} on every seed) and the LSTM does not (every seed >= {BEATS:g} x)"
                + (f": {short}" if short else ""),
                not short
                and all(t.loss < COPY_SOLVED * base for t in exp)
                and all(t.loss >= BEATS * base for t in lstm),
            )
        )
    return out


def _figure(
    arms: dict[str, list[str]], groups: dict[str, dict[str, list[Trial]]], name: str
) -> str:
    """One panel per task: each cell's final val MSE (adding, copy; log scale) or accuracy, the
    mean as a bar and every completed seed as a dot; and a last panel with the gradient that
    reaches each step at initialisation at the longest adding T."""
    plt = pyplot()
    adding = sorted((t for t in arms if t.startswith("adding")), key=lambda t: int(t[9:]))
    tasks = list(arms)
    fig, axes = plt.subplots(1, len(tasks) + bool(adding), figsize=(4.2 * (len(tasks) + 1), 4.2))
    axes = np.atleast_1d(axes)
    for ax, task in zip(axes, tasks, strict=False):
        cells = arms[task]
        classify = not (task.startswith("adding") or task.startswith("copy"))
        for i, cell in enumerate(cells):
            done = _done(groups.get(task, {}).get(cell, []))
            values = [
                100 * t.metrics.get("val/accuracy", math.nan) if classify else t.loss for t in done
            ]
            if values:
                ax.bar(i, mean(values), width=0.7, color=colour(i), alpha=0.6)
                ax.scatter([i] * len(values), values, color="black", s=8, zorder=3)
        ax.set_xticks(range(len(cells)), cells, rotation=60, ha="right", fontsize=7)
        ax.set_title(task, fontsize=9)
        if classify:
            ax.axhline(10, color="grey", linestyle="--", label="chance 10%")
            ax.set_ylabel("final val accuracy (%)")
        else:
            base = ADDING_BASELINE if task.startswith("adding") else copy_baseline(int(task[7:]))
            limit = SOLVED if task.startswith("adding") else COPY_SOLVED * base
            ax.axhline(base, color="grey", linestyle="--", label=f"baseline {base:.3g}")
            ax.axhline(limit, color="grey", linestyle=":", label=f"solved (< {limit:.3g})")
            ax.set(
                yscale="log",
                ylabel="final val loss (MSE)" if task.startswith("adding") else "final val loss",
            )
        ax.legend(fontsize=7)
    if adding:
        ax, task = axes[-1], adding[-1]
        for i, cell in enumerate(arms[task]):
            curves = [
                t.flow[0, -1] for t in groups.get(task, {}).get(cell, []) if t.flow is not None
            ]
            if curves:
                style = "-" if i < 7 else "--"
                ax.plot(
                    np.arange(1, curves[0].shape[0] + 1),
                    geometric_mean(curves),
                    style,
                    color=colour(i),
                    label=cell,
                    linewidth=1,
                )
        ax.set(yscale="log", xlabel="time step t", ylabel="||dL/dh_t|| at initialisation")
        ax.set_title(f"{task}, geometric mean over seeds", fontsize=9)
        if ax.get_legend_handles_labels()[0]:  # no curve before its trials ran
            ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return save(fig, name)


def modern_notes(sweeps: list[Sweep], result: Result) -> list[str]:
    plan, _ = plan_of(sweeps)
    groups = _groups(sweeps)
    adding = sorted((t for t in plan if t.startswith("adding")), key=lambda t: int(t[9:]))
    notes = [
        f"Only {len(s.trials)} of the {s.total} trials of this profile have finished (the sweep "
        "was stopped, or is still running; `rnnlab sweep` of the same file in the same folder "
        "resumes it): the arms marked 'not run' and the criteria that name them wait for the rest."
        for s in sweeps
        if len(s.trials) < s.total
    ]
    for task in (t for t in plan if t.startswith("permuted")):
        scores = {c: _accuracy(ts) for c, ts in groups.get(task, {}).items() if _done(ts)}
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        if ranked:
            notes.append(
                f"{task[0].upper() + task[1:]}, mean val accuracy over the completed seeds, best "
                "first: " + ", ".join(f"{c} {v:.1f}%" for c, v in ranked) + " (chance: 10%)."
            )
    notes += _adding_notes(adding, groups)
    ran = groups.get(adding[-1], {}) if adding else {}
    firsts = {c: [t.first_ratio for t in ts if t.first_ratio is not None] for c, ts in ran.items()}
    ratios = ", ".join(f"{c} {mean(v):.1f}" for c, v in firsts.items() if v)
    if not ratios:
        return notes
    return notes + [
        f"The gradient that reaches step 1 at initialisation, {adding[-1]} (log10 ||dL/dh_1|| / "
        f"||dL/dh_T||, mean over seeds): {ratios}. This is what each cell's construction "
        "promises (orthogonal, oscillator, stable-by-construction, linear); whether training "
        "uses it is the loss column."
    ]


def _adding_notes(adding: list[str], groups: dict[str, dict[str, list[Trial]]]) -> list[str]:
    """Per adding length, the lowest mean val MSE against predicting 1 (1/6) and the cells that
    solved it: whether this budget lets the adding criteria tell the cells apart at all."""
    parts, solved = [], set()
    for task in adding:
        means = {c: mean(t.loss for t in _done(ts)) for c, ts in groups.get(task, {}).items()}
        means = {c: v for c, v in means.items() if math.isfinite(v)}
        if not means:
            continue
        best = min(means, key=means.__getitem__)
        parts.append(f"{task[7:]} {means[best]:.3g} ({best})")
        solved |= {c for c, ts in groups[task].items() if "not" not in _status(task, ts, 0)}
    if not parts:
        return []
    who = (
        "no cell solved it at any length, the LSTM included: at this budget the adding "
        "criteria cannot tell the cells apart"
        if not solved
        else "solved (every seed below " + f"{SOLVED:g}) by: " + ", ".join(sorted(solved))
    )
    return [
        "Adding problem, the lowest mean val MSE over the completed seeds: "
        + ", ".join(parts)
        + f", against {ADDING_BASELINE:.3f} for always predicting 1; {who}."
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
    "Every cell at hidden 32 (the papers: 128 to 512) and at its paper's own options (the cells' "
    "defaults; the LRU at its long-range ring), one optimizer for all (Adam 2e-3; expRNN's "
    "orthogonal parameters at a tenth, its paper's ratio, through its learning-rate group), "
    "clipping at norm 1, batch 32 and 200 steps (6,400 sequences); the adding problem at T=200 "
    "and 1000 instead of 10000 (val and test 256 sequences each), and scikit-learn's 8x8 digits "
    "read pixel by pixel in a fixed permutation (64 steps, ~270 val images) instead of psMNIST "
    "(784 steps, 120 epochs of 55,000 images). The copy claim is left to the paper-sized "
    "modern/copy.paper.yaml. Sizes from pilot runs (issue 20's helper log, helper-20b): one "
    "training step at T=1000 costs 0.06 (LRU) to 1.0 (LEM) CPU seconds, 3.9 s for the 11 cells, "
    "so the 99 trials cost ~15 core-seconds per step and 200 steps is what the ~4000 "
    "core-seconds of a 2-core machine for about 35 minutes allow (the 400 steps first planned "
    "did not fit); evaluation every 50 steps and the gradient probe at steps 0, 100 and 199. "
    "The Lyapunov spectra are off (train.dynamics_every: 0): at T=1000 one measurement took "
    "6-37 s (LRU 34 s, expRNN 37 s), and fewer exponents (4) helped the tanh RNN only. No "
    "finding here reads them. "
    "What these sizes leave the criteria able to test, as a reviewer should read them: 200 "
    "updates are a few percent of what LEM's authors trained at T=10000, so at T=1000 a LEM "
    "that solves the task confirms the claim at a tenth of its length, while one that does not "
    "says only that 200 updates at hidden 32 were not enough, not that LEM cannot; on the "
    "digits, 200 steps are ~5 epochs of ~1,250 training images over 64 steps, so the comparison "
    "with the LSTM is one of early learning on a short sequence, not of psMNIST's asymptotic "
    "accuracy over 784 steps, and with 3 seeds and one val image worth 0.37 points a difference "
    "of a few points is within seed noise (the criterion compares means, with no margin). "
    f"Criteria, fixed before the profile ran: LEM's val MSE below {SOLVED} on every seed at the "
    "longest T; the mean val accuracy over seeds of each of coRNN, UnICORNN and LEM above the "
    "LSTM's on the permuted task; (paper-sized copy) expRNN's val loss below "
    f"{COPY_SOLVED:g} x the memoryless loss on every seed and the LSTM's at or above {BEATS:g} x "
    "it on every seed. A claim whose arms have fewer completed seeds than planned (not run, "
    "stopped, diverged) is not met, and says so.",
    modern_notes,
    paper_only=("modern/adding", "modern/copy"),
)
