"""1. The adding problem: which cells leave the 1/6 baseline, and the gradient that reaches step 1.

Profiles ``adding.yaml`` (tanh RNN, LSTM, GRU) and ``adding-relu.yaml`` (IRNN, IndRNN and a
two-layer tanh RNN control); :func:`adding_arm` names a trial's arm, which the digits section
reuses.
"""

from __future__ import annotations

import numpy as np

from replication import changes
from replication.criteria import ADDING_BASELINE, AT_BASELINE, RATIO_GAP, SOLVED
from replication.figures import colour, geometric_mean, pyplot, save
from replication.parts import (
    CELL_NAMES,
    Check,
    Finding,
    Result,
    by_arm,
    held_out,
    mean,
    mean_std,
    seeds_text,
    table,
)
from replication.reader import Sweep, Trial

PAPER_TEST = {"LSTM": "0.164", "GRU": "5.3e-5", "tanh RNN": "0.177"}
"""Bai et al. 2018's test MSE on the adding problem at T=600 (~70K parameters)."""


def adding_arm(t: Trial) -> str | None:
    """tanh RNN, LSTM, GRU, IndRNN, or IRNN (rnn + relu); None for the incompatible pairs."""
    if "relu" in t.get("remedies").split("+"):
        return "IRNN" if t.get("cell") == "rnn" else None
    return CELL_NAMES.get(t.get("cell"), t.get("cell"))


def adding_status(trials: list[Trial]) -> str:
    """solved (every seed below SOLVED), at baseline (every seed above AT_BASELINE), or mixed."""
    diverged = sum(t.outcome == "diverged" for t in trials)
    if not trials:
        return "-"
    losses = [t.loss for t in trials if t.outcome == "completed"]
    if diverged:
        return f"{diverged} of {len(trials)} diverged"
    if losses and all(v < SOLVED for v in losses):
        return "solved"
    if losses and all(v > AT_BASELINE for v in losses):
        return "at baseline"
    return "mixed"


def adding(sweeps: list[Sweep], figure: str) -> Result:
    arms = by_arm(sweeps, adding_arm)
    lengths = sorted({int(t.get("T")) for ts in arms.values() for t in ts})
    short, long = str(lengths[0]), str(lengths[-1])
    rows = []
    for name, trials in arms.items():
        for T in lengths:
            group = [t for t in trials if t.get("T") == str(T)]
            rows.append(
                [
                    name,
                    str(T),
                    mean_std(t.loss for t in group if t.outcome == "completed"),
                    seeds_text(group, lambda t: t.loss),
                    adding_status(group),
                    f"{mean(t.ratio for t in group):.1f}",
                    held_out(group),
                    PAPER_TEST.get(name.split(" (")[0], "-"),
                ]
            )
    head = [
        "cell",
        "T",
        "val MSE",
        "per seed",
        "status",
        "log10 ratio (end)",
        "test MSE",
        "paper test MSE (Bai 2018, T=600)",
    ]
    checks = []

    def arm_at(prefix: str, T: str) -> list[list[Trial]]:
        return [
            [t for t in ts if t.get("T") == T] for n, ts in arms.items() if n.startswith(prefix)
        ]

    tanh = [t for n, ts in arms.items() if n.startswith("tanh RNN") for t in ts]
    if tanh:
        checks.append(
            Check(
                f"tanh RNN stays at the baseline at every T: every seed's val MSE > {AT_BASELINE}",
                all(t.outcome == "completed" and t.loss > AT_BASELINE for t in tanh),
            )
        )
    for cell in ("LSTM", "GRU", "IndRNN", "IRNN"):
        for group in arm_at(cell, short):
            checks.append(
                Check(
                    f"{cell} solves T={short}: every seed's val MSE < {SOLVED}",
                    bool(group)
                    and all(t.outcome == "completed" and t.loss < SOLVED for t in group),
                )
            )
    for cell, rule, limit in (
        ("LSTM", "beats the baseline (Arjovsky: up to T=400)", AT_BASELINE),
        ("IndRNN", "solves it (Li: up to T=1000)", SOLVED),
    ):
        for group in arm_at(cell, long):
            if long != short:
                checks.append(
                    Check(
                        f"{cell} at the longest T={long} {rule}: every seed's val MSE < {limit}",
                        bool(group)
                        and all(t.outcome == "completed" and t.loss < limit for t in group),
                    )
                )
    rnn, lstm = (
        {t.seed: t for t in sweeps[0].pick(cell=c, T=short) if t.outcome == "completed"}
        for c in ("rnn", "lstm")
    )
    pairs = [(rnn[s], lstm[s]) for s in sorted(rnn.keys() & lstm.keys())]
    if pairs:
        gaps = ", ".join(f"s{a.seed} {b.ratio - a.ratio:.1f}" for a, b in pairs)
        checks.append(
            Check(
                f"T={short}: the tanh RNN's log10 ||dL/dh_1|| / ||dL/dh_T|| at the end is at least "
                f"{RATIO_GAP:g} orders of magnitude below the LSTM's, seed by seed (gaps: {gaps})",
                all(b.ratio - a.ratio >= RATIO_GAP for a, b in pairs),
            )
        )
    return Result(table(head, rows), checks, _adding_figure(arms, lengths, figure))


def _adding_figure(arms: dict[str, list[Trial]], lengths: list[int], name: str) -> str:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (arm, trials) in enumerate(arms.items()):
        done = [t for t in trials if t.outcome == "completed"]
        x = [int(t.get("T")) * (1 + 0.03 * (i - 2)) for t in done]  # spread the arms apart
        left.scatter(x, [t.loss for t in done], color=colour(i), s=14, alpha=0.7)
        means = [mean(t.loss for t in done if t.get("T") == str(T)) for T in lengths]
        left.plot(lengths, means, "-o", color=colour(i), label=arm, markersize=3)
        curves = [
            t.flow[-1, -1] for t in done if t.flow is not None and t.get("T") == str(lengths[0])
        ]
        if curves:
            right.plot(
                np.arange(1, curves[0].shape[0] + 1), geometric_mean(curves), color=colour(i)
            )
    left.axhline(ADDING_BASELINE, color="grey", linestyle="--", label="baseline 1/6")
    left.axhspan(
        AT_BASELINE, 1.0, color="#dddddd", alpha=0.4, label=f"at baseline (> {AT_BASELINE})"
    )
    left.axhline(SOLVED, color="grey", linestyle=":", label=f"solved (< {SOLVED})")
    left.set(xscale="log", yscale="log", xlabel="T (sequence length)", ylabel="final val MSE")
    left.set_xticks(lengths, [str(T) for T in lengths])
    left.set_ylim(top=1.0)
    fig.legend(*left.get_legend_handles_labels(), loc="lower center", ncol=5, fontsize=7)
    fig.subplots_adjust(bottom=0.3)
    right.set(yscale="log", xlabel="time step t", ylabel="||dL/dh_t|| at the last probe")
    right.set_title(f"T={lengths[0]}, geometric mean over seeds", fontsize=9)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return save(fig, name)


# --- 2. copy memory ----------------------------------------------------------------------------


def adding_notes(sweeps: list[Sweep], result: Result) -> list[str]:
    notes = []
    lstm = [t for s in sweeps[:1] for t in s.pick(cell="lstm") if t.outcome == "completed"]
    if lstm:
        steps = ", ".join(
            f"T={t.get('T')} s{t.seed}: {changes.left_plateau(t) or 'never'}"
            for t in sorted(lstm, key=lambda t: (int(t.get("T")), t.seed))
        )
        notes.append(
            "The LSTM sits on the baseline plateau before it learns the task; the step at which "
            f"its val MSE first fell below {SOLVED} ({steps}) is why the CPU profile uses Adam at "
            "lr 1e-2 and 2000 steps rather than the papers' lr 1e-3: at 1e-3 an LSTM is still on "
            "the plateau after 3000 steps (shared/MEASURED.md), and our pilot runs at lr 3e-3 left "
            "some seeds on it."
        )
    tanh = [t for s in sweeps for t in s.pick(cell="rnn") if adding_arm(t) == "tanh RNN"]
    if tanh and all(t.outcome == "completed" and t.loss > AT_BASELINE for t in tanh):
        notes.append(
            "The tanh RNN's gradient reaching the first step is tiny at the end of training "
            f"(log10 ratio {mean_std(t.ratio for t in tanh)} over its runs, a bound where it "
            "underflowed): the error signal from the last step does not reach the marked values, "
            "so the net learns the mean and stays at the 1/6 baseline, at both learning rates "
            "tried (the 2-layer control in adding-relu.yaml runs at 1e-3)."
        )
    relu = [t for s in sweeps[1:] for t in s.trials if adding_arm(t) in ("IRNN", "IndRNN")]
    if relu:
        swings = ", ".join(
            f"{adding_arm(t)} T={t.get('T')} s{t.seed}: best {min(v for _, v in t.history):.3g}, "
            f"final {t.loss:.3g}"
            for t in sorted(relu, key=lambda t: (str(adding_arm(t)), int(t.get("T")), t.seed))
            if t.outcome == "completed" and t.history
        )
        notes.append(
            "The ReLU nets' settings come from pilot runs with torch's input initialisation "
            "(before issue 14): at lr 1e-2 the IRNN either stayed on the baseline or blew up "
            "(Arjovsky et al. report it unstable), and a single IndRNN layer did not leave the "
            "baseline at lr 1e-3 or 1e-2; Li et al.'s published adding code stacks two IndRNN "
            "layers, which adding-relu.yaml follows. Best over the evaluations against the "
            f"final value: {swings}; the criteria use the final value, and Li et al. decay the "
            "learning rate, which the CPU profile does not."
        )
        notes.append(changes.input_init(sweeps[1], adding_arm))
    return notes


FINDING = Finding(
    "adding",
    "Adding problem",
    ("adding", "adding-relu"),
    adding,
    "Arjovsky et al. 2016 (hidden 128, RMSProp lr 1e-3, batch 20-50, clip 1): the LSTM beats "
    "the 1/6 baseline up to T=400; the tanh RNN never does at T >= 100; the IRNN is unstable. "
    "Li et al. 2018 (IndRNN; Adam 2e-4, |u| <= 2^(1/T)): at T=100 everything but the tanh "
    "RNN converges; at T=1000 the LSTM and IRNN fail and IndRNN converges. Bai et al. 2018 "
    "(TCN, T=600, ~70K parameters): test MSE LSTM 0.164, GRU 5.3e-5, RNN 0.177.",
    "Narrower nets, Adam instead of RMSProp, two thousand steps instead of tens of "
    "thousands, and T up to 200 instead of 400 (Arjovsky) or 1000 (Li). The learning rates "
    "differ by family (see the notes): adding.yaml trains the tanh RNN, LSTM and GRU at 1e-2; "
    "adding-relu.yaml trains the IRNN, a two-layer IndRNN and a two-layer tanh RNN control at "
    "1e-3.",
    adding_notes,
)
