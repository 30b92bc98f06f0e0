"""7. The same measurements on real sequences: the example sweeps on forecasting and characters.

``experiments/forecast.yaml`` (Mackey-Glass k-step forecasting) and ``experiments/chars.yaml``
(next-character prediction on CPython's help texts) run the tanh RNN, LSTM and GRU with no
remedy, clipping and layer norm. No paper claim is tested: the section is descriptive and has no
verdict. It shows the final val metrics beside each task's trivial baseline, which the task class
computes (:func:`baseline`), the test metrics (the test split once, at the end), and the
gradient measurement of the synthetic sections, log10 ||dL/dh_1|| / ||dL/dh_T||, at
initialisation and at the end of training, for the whole loss L and for the loss of the task's
target steps alone (chars: the window's last step; forecast: its whole loss, the same number).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from replication import changes
from replication.criteria import FLAT
from replication.figures import colour, geometric_mean, pyplot, save
from replication.parts import CELL_NAMES, finite, mean, mean_std, settings, spearman, table
from replication.reader import ROOT, Sweep, Trial, load, planned, plugin_manager
from rnnlab._names import TARGET_LOG10_RATIO

EXAMPLES = "experiments"
TITLE = "The same measurements on real sequences"
VERDICT = "no published claim; descriptive"
REMEDY_NAMES = {"none": "none", "clip": "clipping", "layernorm": "layer norm"}
LINES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D"]


@dataclass(frozen=True)
class Task:
    """One example sweep: its file, what it measures beyond the loss, and its baseline."""

    stem: str  # experiments/<stem>.yaml
    title: str
    derived: str  # the task's derived metric: val/nrmse or val/bpc
    derived_name: str
    baseline_name: str
    describe: Callable[[dict[str, Any]], str]  # the task in words, from its dataset config


def _forecast(d: dict[str, Any]) -> str:
    series = (
        f"Mackey-Glass (tau {d['tau']:g}, one sample every {d['sample_every']:g} time units)"
        if d["series"] == "mackey_glass"
        else f"the `{d['series']}` series"
    )
    return (
        f"{series}; from a window of {d['seq_len']} samples predict the next {d['horizon']}. The "
        "series is standardised on its train block, so val loss is the MSE in training standard "
        "deviations and the normalised RMSE is its square root; val accuracy is the fraction of "
        f"val windows whose {d['horizon']} forecasts all lie within {d['tolerance']:g} standard "
        "deviations of the truth."
    )


def _chars(d: dict[str, Any]) -> str:
    text = "CPython's help texts (`pydoc_data.topics`)" if d["path"] is None else f"`{d['path']}`"
    return (
        f"{text}, split into contiguous train, val and test blocks; the net predicts the next "
        f"character at every one of {d['seq_len']} steps. val loss is the cross-entropy in nats, "
        "bits per character = val loss / ln 2; val accuracy is the fraction of next characters "
        "predicted right. The loss enters at every step, so h_1 collects gradient from every "
        "later target and the log10 ratio can be positive without any long memory."
    )


TASKS = (
    Task(
        "forecast",
        "Forecasting a chaotic series",
        "val/nrmse",
        "normalised RMSE",
        "persistence (repeat the window's last value)",
        _forecast,
    ),
    Task(
        "chars",
        "Next-character prediction",
        "val/bpc",
        "bits per character",
        "unigram (the train block's character frequencies)",
        _chars,
    ),
)


def baseline(sweep: Sweep) -> dict[str, float]:
    """The val metrics of the task's trivial predictor (``baseline_loss`` of the task class, built
    from the sweep's dataset config, and the task's derived metrics of it); {} if it has none."""
    config = sweep.config["dataset"]
    cls = plugin_manager().registry().get("dataset", config["name"])
    options = cls.Params.model_validate({k: v for k, v in config.items() if k != "name"})
    dataset = cls(options, sweep.config["seed"])
    if dataset.baseline_loss is None:
        return {}
    scores = {"val/loss": float(dataset.baseline_loss)}
    return scores | dataset.derived_metrics(scores)


def arm_of(t: Trial) -> tuple[str, str]:
    """(cell, remedy) labels of a trial, e.g. ``("lstm", "clip")``."""
    return t.get("cell"), t.get("remedies")


def spread(values: list[float]) -> str:
    """One value as it is; several as ``mean ± std (n)``; ``-`` when none is finite."""
    vs = finite(values)
    return format(vs[0], ".3g") if len(vs) == 1 else mean_std(vs)


def first_target(trials: list[Trial]) -> list[float]:
    """The target curve's log10 ratio at the first probe of every completed trial."""
    return [
        math.nan if t.first_target_ratio is None else t.first_target_ratio
        for t in trials
        if t.outcome == "completed"
    ]


def metric(trials: list[Trial], key: str) -> list[float]:
    """The final value of ``key`` of every completed trial."""
    return [t.metrics.get(key, math.nan) for t in trials if t.outcome == "completed"]


def task_table(task: Task, s: Sweep, base: dict[str, float]) -> str:
    """Cell x remedy: the final val metrics and the log10 ratio at init and at the end."""
    rows = []
    for cell in s.values("cell"):
        for remedy in s.values("remedies"):
            group = s.pick(cell=cell, remedies=remedy)
            rows.append(
                [
                    CELL_NAMES.get(cell, cell),
                    REMEDY_NAMES.get(remedy, remedy),
                    *(spread(metric(group, k)) for k in ("val/loss", task.derived)),
                    spread(metric(group, "val/accuracy")),
                    spread([t.first_ratio for t in group if t.first_ratio is not None]),
                    spread(metric(group, "grad/log10_ratio")),
                    spread(first_target(group)),
                    spread(metric(group, TARGET_LOG10_RATIO)),
                    spread(metric(group, task.derived.replace("val/", "test/"))),
                ]
            )
    if base:
        shown = [format(base[k], ".3g") if k in base else "-" for k in ("val/loss", task.derived)]
        rows.append([f"baseline: {task.baseline_name}", "", *shown, *["-"] * 6])
    head = [
        "cell",
        "remedy",
        "val loss",
        task.derived_name,
        "val accuracy",
        "log10 ||dL/dh_1|| / ||dL/dh_T||, init",
        "... at the end",
        "target steps' log10 ratio, init",
        "... at the end",
        f"test {task.derived_name}",
    ]
    return table(head, rows)


Arm = tuple[str, str]  # (cell, remedy) labels, e.g. ("lstm", "clip")


def arm_name(arm: Arm) -> str:
    """``LSTM with clipping``; ``tanh RNN`` for no remedy."""
    cell, remedy = arm
    extra = "" if remedy == "none" else f" with {REMEDY_NAMES.get(remedy, remedy)}"
    return CELL_NAMES.get(cell, cell) + extra


def per_arm(s: Sweep, key: str) -> dict[Arm, list[float]]:
    """Arm -> the finite final values of ``key`` over its completed seeds."""
    return {
        (c, r): finite(metric(s.pick(cell=c, remedies=r), key))
        for c in s.values("cell")
        for r in s.values("remedies")
    }


def task_notes(task: Task, s: Sweep, base: dict[str, float]) -> list[str]:
    """What the table says, in sentences; every number read from the sweep."""
    losses = per_arm(s, "val/loss")
    loss = {a: mean(v) for a, v in losses.items() if v}
    ratio = {a: mean(v) for a, v in per_arm(s, "grad/log10_ratio").items() if v}
    target = {a: mean(v) for a, v in per_arm(s, TARGET_LOG10_RATIO).items() if v}
    if not loss:
        return []
    best = min(loss, key=loss.__getitem__)
    ref = base.get("val/loss", math.nan)
    against = f", {loss[best] / ref:.2g} x the baseline's {ref:.3g}" if ref > 0 else ""
    plain = sorted((a for a in loss if a[1] == "none"), key=loss.__getitem__)
    ranking = ", ".join(f"{arm_name(a)} {loss[a]:.3g}" for a in plain)
    notes = [
        f"Lowest mean val loss: {arm_name(best)}, {loss[best]:.3g}{against}. Without a remedy "
        f"the cells rank {ranking}."
    ]
    remedy_note = remedy_effects(s, losses)
    if remedy_note:
        notes.append(remedy_note)
    if ratio:
        notes.append(gradient_note(s, loss, ratio, best))
    if target and any(abs(target[a] - ratio.get(a, math.nan)) > 1e-6 for a in target):
        notes.append(target_note(loss, ratio, target))
    return [*notes, changes.layernorm(task.stem, s)]


def target_note(loss: dict[Arm, float], ratio: dict[Arm, float], target: dict[Arm, float]) -> str:
    """The target steps' log10 ratio at the end against the whole loss's, as a sentence."""
    low, high = min(target, key=target.__getitem__), max(target, key=target.__getitem__)
    return (
        "The loss of the target steps alone (the window's last step) tells a different story "
        f"from the whole loss's: its log10 ratio at the end runs from {target[low]:.3g} "
        f"({arm_name(low)}; whole loss {ratio.get(low, math.nan):.3g}) to {target[high]:.3g} "
        f"({arm_name(high)}; whole loss {ratio.get(high, math.nan):.3g}), and "
        f"{rank_agreement(loss, target)}"
    )


def remedy_effects(s: Sweep, losses: dict[Arm, list[float]]) -> str:
    """Each remedy's val loss over the same cell's without it, and which changes lie within
    the seeds' spread (|difference| at most the two arms' standard deviations added)."""
    changes, within = [], []
    for remedy in (r for r in s.values("remedies") if r != "none"):
        parts, small = [], []
        for cell in s.values("cell"):
            with_, without = losses[cell, remedy], losses[cell, "none"]
            if not with_ or not without:
                continue
            parts.append(f"{CELL_NAMES.get(cell, cell)} x{mean(with_) / mean(without):.3g}")
            if len(with_) > 1 and len(without) > 1:
                noise = statistics.stdev(with_) + statistics.stdev(without)
                if abs(mean(with_) - mean(without)) <= noise:
                    small.append(CELL_NAMES.get(cell, cell))
        if parts:
            changes.append(f"{REMEDY_NAMES.get(remedy, remedy)} {', '.join(parts)}")
        if small:
            within.append(f"{REMEDY_NAMES.get(remedy, remedy)} for the {', '.join(small)}")
    if not changes:
        return ""
    if len(s.seeds) < 2:
        spread_text = " With one seed these ratios have no error bar."
    elif within:
        spread_text = f" Within the seeds' spread: {'; '.join(within)}."
    else:
        spread_text = " Every change is larger than the seeds' spread."
    return (
        "Val loss with a remedy over the same cell's without it (below 1: the remedy helped): "
        + "; ".join(changes)
        + "."
        + spread_text
    )


def gradient_note(s: Sweep, loss: dict[Arm, float], ratio: dict[Arm, float], best: Arm) -> str:
    """The end-of-training log10 ratios against the loss, as sentences."""
    low, high = min(ratio, key=ratio.__getitem__), max(ratio, key=ratio.__getitem__)
    done = [t for t in s.trials if t.outcome == "completed"]
    bound = sum(t.metrics.get("grad/underflow", 0.0) > 0 for t in done)
    text = (
        f"At the end of training the log10 ratio runs from {ratio[low]:.3g} ({arm_name(low)}) "
        f"to {ratio[high]:.3g} ({arm_name(high)})"
    )
    if bound:
        text += f" ({bound} of {len(done)} runs underflowed, so their ratio is a bound)"
    text += f"; {rank_agreement(loss, ratio)}"
    if ratio.get(best, math.nan) < -FLAT:
        text += (
            f" The lowest-loss arm's gradient falls by {-ratio[best]:.3g} orders of magnitude "
            "across the sequence: here a vanishing gradient goes with the best result, unlike "
            "on the adding problem, where it kept the tanh RNN at the baseline."
        )
    elif all(v > 0 for v in ratio.values()):
        text += (
            " Every arm's ratio is positive: h_1 receives more gradient than h_T because it "
            "feeds every later target, so this ratio, which separates the cells on the adding "
            "problem, does not measure how far back one target's signal reaches here."
        )
    return text


def rank_agreement(loss: dict[Any, float], ratio: dict[Any, float]) -> str:
    """Whether a flatter end-of-training gradient goes with a lower val loss across the arms
    (Spearman's rank correlation of |log10 ratio| and val loss), as a sentence."""
    arms = [a for a in loss if math.isfinite(loss[a]) and math.isfinite(ratio.get(a, math.nan))]
    if len(arms) < 3:
        return "too few arms to compare it with the loss."
    rho = spearman([abs(ratio[a]) for a in arms], [loss[a] for a in arms])
    if not math.isfinite(rho):
        return "the ratio or the loss is the same in every arm."
    direction = "lower" if rho > 0 else "higher"
    return (
        f"across the {len(arms)} arms the rank correlation of |log10 ratio| with val loss is "
        f"{rho:+.2f}: the flatter the gradient, the {direction} the loss."
    )


def figure(measured: list[tuple[Task, Sweep, dict[str, float]]], name: str) -> str:
    """Per task: ||dL/dh_t|| at the last probe (geometric mean over seeds) by cell and remedy,
    and each run's val loss over the baseline against its final log10 ratio."""
    plt = pyplot()
    fig, grid = plt.subplots(len(measured), 2, figsize=(11, 3.8 * len(measured)), squeeze=False)
    for (task, s, base), (left, right) in zip(measured, grid, strict=True):
        ref = base.get("val/loss", math.nan)
        for i, cell in enumerate(s.values("cell")):
            for j, remedy in enumerate(s.values("remedies")):
                done = [t for t in s.pick(cell=cell, remedies=remedy) if t.outcome == "completed"]
                label = f"{CELL_NAMES.get(cell, cell)}, {REMEDY_NAMES.get(remedy, remedy)}"
                curves = [t.flow[-1, -1] for t in done if t.flow is not None]
                if curves:
                    left.plot(
                        np.arange(1, curves[0].shape[0] + 1),
                        geometric_mean(curves),
                        color=colour(i),
                        linestyle=LINES[j % len(LINES)],
                        label=label,
                    )
                right.scatter(
                    [t.ratio for t in done],
                    [t.loss / ref for t in done],
                    color=colour(i),
                    marker=MARKERS[j % len(MARKERS)],
                    label=label,
                )
        left.set(yscale="log", xlabel="time step t", ylabel="||dL/dh_t|| at the last probe")
        left.set_title(f"{task.stem}: gradient flow at the end (mean over seeds)", fontsize=9)
        left.legend(fontsize=6, ncol=3)
        right.axhline(1.0, color="grey", linestyle="--", label=task.baseline_name.split(" (")[0])
        ys = finite(t.loss / ref for t in s.trials if t.outcome == "completed")
        if ys and max(ys) > 10 * min(ys) > 0:
            right.set_yscale("log")
        right.set(
            xlabel="log10 ||dL/dh_1|| / ||dL/dh_T|| at the end",
            ylabel="val loss / baseline's",
        )
        right.set_title(f"{task.stem}: each run", fontsize=9)
        right.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return save(fig, name)


def section(number: int, storage: str, tracking_uri: str | None) -> tuple[str, list[Sweep]]:
    """The section's markdown and the example sweeps it found (none: not run yet)."""
    out = [f"## {number}. {TITLE}", ""]
    out += [
        "**No published claim is tested here**, so this section has no criteria and no verdict; "
        "it is descriptive. The synthetic sections show that the gradient vanishes over long "
        "sequences in a tanh RNN and that gating, clipping and normalisation each act on it. The "
        "two example sweeps below take the same measurements (final val metrics and log10 "
        "||dL/dh_1|| / ||dL/dh_T|| at initialisation and at the last probe) on real sequences, "
        "with the tanh RNN, LSTM and GRU, each with no remedy, clipping and layer norm: does "
        "what fixes the adding problem help here? Each table ends with the task's trivial "
        "baseline, computed by the task class on the same val split.",
        "",
    ]
    measured, found = [], []
    for task in TASKS:
        plan = planned(task.stem, EXAMPLES)
        sweep = load(plan.name, storage, tracking_uri)
        shown = sweep if sweep is not None and sweep.trials else None
        path = ROOT / EXAMPLES / f"{task.stem}.yaml"
        options = yaml.safe_load(path.read_text())["dataset"]
        config = (shown or plan).config
        out += [f"### {number}.{TASKS.index(task) + 1}. {task.title}", ""]
        out += [task.describe(config["dataset"]), ""]
        state = "" if shown else " (not run yet)"
        out += [f"- `{EXAMPLES}/{task.stem}.yaml`{state}: {settings(shown or plan, options)}.", ""]
        if shown is None:
            out += [
                f"**Not run yet**: `rnnlab sweep $REPO/{EXAMPLES}/{task.stem}.yaml` in the folder "
                "of the replication sweeps, then this script again.",
                "",
            ]
            continue
        found.append(shown)
        base = baseline(shown)
        measured.append((task, shown, base))
        out += [task_table(task, shown, base), ""]
        out += [f"{n}\n" for n in task_notes(task, shown, base) if n]
    if measured:
        out += [f"![{TITLE}](results/{figure(measured, 'realdata.png')})", ""]
    return "\n".join(out), found
