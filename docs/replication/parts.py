"""The pieces every section of the page is built from: small statistics, tables, verdicts.

A :class:`Finding` is one classic result; :func:`section` turns it and its sweeps into the
page's markdown, with the :class:`Result` its analysis returns.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from replication import previous
from replication.reader import PROFILES, Sweep, Trial, planned

CELL_NAMES = {"rnn": "tanh RNN", "lstm": "LSTM", "gru": "GRU", "indrnn": "IndRNN"}


# --- small statistics --------------------------------------------------------------------------


def finite(values: Iterable[float]) -> list[float]:
    """The values that are numbers (not None, NaN or Inf)."""
    return [v for v in values if v is not None and math.isfinite(v)]


def mean_std(values: Iterable[float]) -> str:
    """``mean ± std (n)`` of the finite values; ``-`` when there are none."""
    vs = finite(values)
    if not vs:
        return "-"
    centre = statistics.fmean(vs)
    std = statistics.stdev(vs) if len(vs) > 1 else 0.0
    if std < 1e-6 * max(1.0, abs(centre)):  # equal values, up to float32 rounding
        std = 0.0
    return f"{centre:.3g} ± {std:.2g} (n={len(vs)})"


def seeds_text(trials: list[Trial], value: Callable[[Trial], float], fmt: str = ".3g") -> str:
    """Each seed's value, e.g. ``s0 0.166, s1 diverged``."""
    parts = []
    for t in sorted(trials, key=lambda t: t.seed):
        shown = t.outcome if t.outcome != "completed" else format(value(t), fmt)
        parts.append(f"s{t.seed} {shown}")
    return ", ".join(parts) or "-"


def mean(values: Iterable[float]) -> float:
    """The mean of the finite values; NaN when there are none."""
    vs = finite(values)
    return statistics.fmean(vs) if vs else math.nan


def held_out(trials: Iterable[Trial], what: str = "loss", scale: float = 1.0) -> str:
    """``mean ± std (n)`` of ``test/<what>`` (times ``scale``) over the completed trials, the
    papers' kind of number: the test split once, at the end, on the weights ``train.select``
    chose (named when not the final ones); ``-`` for runs recorded before rnnlab evaluated it."""
    done = [t for t in trials if t.outcome == "completed"]
    text = mean_std(scale * t.test(what) for t in done)
    rules = sorted({t.selection for t in done if t.selection} - {"final"})
    if text != "-" and rules:
        text += f", {'/'.join(rules)} weights"
    return text


def target_ratio_text(trials: Iterable[Trial], first: bool = False) -> str:
    """``mean ± std (n)`` of the target curve's log10 ratio over the completed trials, at the
    last probe (or the first, at initialisation); ``-`` for runs from before it was measured."""
    done = [t for t in trials if t.outcome == "completed"]
    if first:
        return mean_std(t.first_target_ratio for t in done if t.first_target_ratio is not None)
    return mean_std(t.target_ratio for t in done)


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (ties get their mean rank); NaN when a side is constant."""

    def ranks(v: list[float]) -> np.ndarray:
        a = np.asarray(v, dtype=float)
        order = a.argsort()
        r = np.empty(len(a))
        r[order] = np.arange(len(a), dtype=float)
        for value in np.unique(a):
            r[a == value] = r[a == value].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


# --- page pieces and sections ---------------------------------------------------------------------


@dataclass
class Check:
    """One criterion of a verdict, stated before the measurement, and whether it held."""

    text: str
    passed: bool


@dataclass
class Result:
    """What one profile (CPU or paper-sized) of a finding measured."""

    table: str
    checks: list[Check]
    figure: str | None = None  # file name under docs/results/
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        passed = sum(c.passed for c in self.checks)
        if self.checks and passed == len(self.checks):
            return "reproduced"
        return "partly reproduced" if passed else "not reproduced"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table; a ``|`` inside a cell (as in ||dL/dh_t||) is escaped."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


def settings(sweep: Sweep, options: Collection[str] | None = None) -> str:
    """The settings of a sweep in one line, read from its stored definition; ``options``, if
    given, limits the dataset options shown to those."""
    c, t = sweep.config, sweep.config["train"]
    varied = set(sweep.space)
    data = {
        k: v
        for k, v in c["dataset"].items()
        if k not in ("name", "val_size", "test_size")
        and f"dataset.{k}" not in varied
        and (options is None or k in options)
    }
    remedies = ", ".join(
        r["name"] + (f" at norm {r['threshold']:g}" if "threshold" in r else "")
        for r in c["remedies"]
    )
    layers = c["model"]["layers"]
    options = ", ".join(f"{k} {v}" for k, v in data.items())
    task = c["dataset"]["name"] + (f" ({options})" if options else "")
    parts = [
        "dataset: each grid point's (varied)" if "dataset" in varied else task,
        f"{c['cell']['name']} hidden {c['cell']['hidden_size']}"
        + ("" if "model.layers" in varied else f", {layers} layer{'s' * (layers > 1)}"),
        f"remedies {remedies or 'none'}",
        f"{t['optimizer']}{_alpha(t)} lr {t['lr']:g}, batch {t['batch_size']}, {t['steps']} step"
        + "s" * (t["steps"] > 1),
        "varied: " + "; ".join(f"`{k}` {', '.join(v)}" for k, v in sweep.space.items()),
        f"seeds {', '.join(map(str, sweep.seeds))}",
    ]
    if sweep.trials:
        parts.append(
            f"{len(sweep.trials)} of {sweep.total} trials finished, "
            f"{sweep.seconds / 60:.1f} min of trial time"
        )
    else:
        parts.append(f"{sweep.total} trials")
    return "; ".join(parts)


def _alpha(train: dict[str, Any]) -> str:
    """`` (alpha 0.9)`` when rmsprop's smoothing constant is not torch's 0.99 (older stores
    have none)."""
    alpha = train.get("rmsprop_alpha", 0.99)
    return f" (alpha {alpha:g})" if train["optimizer"] == "rmsprop" and alpha != 0.99 else ""


def by_arm(sweeps: list[Sweep], arm: Callable[[Trial], str | None]) -> dict[str, list[Trial]]:
    """Trials by arm label, each label qualified by its sweep's depth and learning rate when
    the sweeps differ in them (``tanh RNN (2 layers, lr 0.001)``)."""
    qualify = len({(s.config["model"]["layers"], s.config["train"]["lr"]) for s in sweeps}) > 1
    found: dict[str, list[Trial]] = {}
    for s in sweeps:
        layers, lr = s.config["model"]["layers"], s.config["train"]["lr"]
        extra = f" ({layers} layer{'s' * (layers > 1)}, lr {lr:g})" if qualify else ""
        for t in s.trials:
            name = arm(t)
            if name is not None and t.outcome != "incompatible":
                found.setdefault(name + extra, []).append(t)
    return found


@dataclass(frozen=True)
class Finding:
    """One classic result: the profiles that measure it, the paper's claim, the analysis."""

    key: str
    title: str
    stems: tuple[str, ...]  # profile files in experiments/replications/ (the CPU ones)
    analyse: Callable[[list[Sweep], str], Result]
    paper: str  # what the papers report (quoted from shared/REFERENCES.md)
    reduced: str  # how the CPU profile differs from the paper, in words
    notes: Callable[[list[Sweep], Result], list[str]] = lambda sweeps, result: []
    # paper-sized profiles without a CPU counterpart (a claim the CPU profile's tasks leave out),
    # as paths under experiments/replications/ without ``.paper.yaml``: ``modern/copy``
    paper_only: tuple[str, ...] = ()

    @property
    def paper_stems(self) -> tuple[str, ...]:
        """Every paper-sized profile of the finding: one per CPU profile, then the paper-only."""
        return (*self.stems, *self.paper_only)


def section(
    number: int, finding: Finding, cpu: list[Sweep | None], paper: list[Sweep | None]
) -> tuple[str, Result | None]:
    """The finding's part of the page, and what its CPU profile measured (None: not run)."""
    files = ", ".join(f"`{PROFILES}/{s}.yaml`" for s in finding.stems)
    out = [f"## {number}. {finding.title}", "", f"**The paper.** {finding.paper}", ""]
    out += [f"**Profiles.** CPU: {files}; paper-sized: the same names with `.paper.yaml`.", ""]
    for stem, sweep in zip(finding.stems, cpu, strict=True):
        shown = sweep or planned(stem)
        state = "" if sweep else " (not run yet)"
        out.append(f"- `{stem}.yaml`{state}: {settings(shown)}.")
    for stem in finding.paper_stems:
        out.append(f"- `{stem}.paper.yaml` (paper-sized): {settings(planned(stem + '.paper'))}.")
    out += ["", f"**Reduced for the CPU.** {finding.reduced}", ""]
    present = [s for s in cpu if s is not None and s.trials]
    if not present:
        out += ["**Not measured yet**: run the CPU profiles (see the top of the page).", ""]
        if finding.paper_only:  # their commands are nowhere else on the page
            out += [_paper_part(finding, paper), ""]
        return "\n".join(out), None
    result = finding.analyse(present, f"{finding.key}.png")
    out += ["**Measured by rnnlab (CPU profile).**", "", result.table, ""]
    if result.figure:
        out += [f"![{finding.title}](results/{result.figure})", ""]
    out += ["**Criteria.**", ""]
    out += [f"- {'✅' if c.passed else '❌'} {c.text}" for c in result.checks]
    failed = [c.text for c in result.checks if not c.passed]
    reason = f" Not met: {'; '.join(failed)}." if failed else ""
    out += [
        "",
        f"**Verdict (CPU profile): {result.verdict}**, {len(result.checks) - len(failed)} of "
        f"{len(result.checks)} criteria met.{reason}",
        "",
    ]
    since = previous.changes(finding.key, failed, [c.text for c in result.checks])
    if since:
        out += [since, ""]
    notes = [n for n in finding.notes(present, result) if n]  # "": nothing to say
    if notes:
        out += ["**What we found.**", "", *[f"{n}\n" for n in notes]]
    out += [_paper_part(finding, paper), ""]
    return "\n".join(out), result


def _paper_part(finding: Finding, paper: list[Sweep | None]) -> str:
    """The paper-sized profile's measurement, or the commands that would run it."""
    present = [s for s in paper if s is not None and s.trials]
    if not present:
        commands = "\n".join(
            f"rnnlab sweep $REPO/{PROFILES}/{s}.paper.yaml" for s in finding.paper_stems
        )
        return (
            "**Paper-sized profile: not run yet** (the development machines have no GPU). On a "
            f"GPU machine, in the folder of the CPU sweeps (one trial per GPU at a time):"
            f"\n\n```bash\n{commands}\npython $REPO/docs/make_results.py\n```"
        )
    result = finding.analyse(present, f"{finding.key}-paper.png")
    checks = "\n".join(f"- {'✅' if c.passed else '❌'} {c.text}" for c in result.checks)
    return (
        f"**Paper-sized profile.**\n\n{result.table}\n\n![{finding.title}, paper-sized]"
        f"(results/{result.figure})\n\n{checks}\n\n**Verdict (paper-sized): {result.verdict}.**"
    )
