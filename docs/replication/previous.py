"""The page before issue 14's corrections, quoted: its verdicts and the figures that changed.

Issue 14 corrected the instrument (layer norm on the summed pre-activation, normalisers between
IndRNN layers, the papers' input initialisation of IRNN and IndRNN, a step size for residual
connections through time, the target curve, the test split) and the sweeps were run again. The
page generated before it, at commit :data:`COMMIT`, measured the same profiles with the old code;
its verdicts and the few figures the "What we found" notes compare with are quoted here, as the
papers' numbers are quoted from shared/REFERENCES.md: they are not measured by this run.
tests/test_replications.py checks every quote against ``git show COMMIT:docs/results.md``.
A finding added later has no entry and its summary row says so.
"""

from __future__ import annotations

from dataclasses import dataclass

COMMIT = "a055c58"
"""The last commit whose docs/results.md came from the code before issue 14."""


@dataclass(frozen=True)
class Quote:
    """A value as the page of :data:`COMMIT` printed it, on the line that starts with ``line``."""

    line: str
    value: str

    def __str__(self) -> str:
        return self.value


VERDICTS: dict[str, tuple[str, str]] = {
    "adding": ("partly reproduced", "7 of 8"),
    "copy": ("partly reproduced", "2 of 3"),
    "digits": ("partly reproduced", "1 of 4"),
    "clipping": ("partly reproduced", "3 of 5"),
    "gradflow": ("partly reproduced", "2 of 9"),
    "depth": ("partly reproduced", "4 of 5"),
}
"""Finding key -> (verdict, criteria met) in the summary table of :data:`COMMIT`."""

FAILED: dict[str, tuple[str, ...]] = {
    "adding": (
        "IndRNN at the longest T=200 solves it (Li: up to T=1000): every seed's val MSE < 0.05",
    ),
    "copy": ("... and only at short T: at the longest T=100 no LSTM seed beats it",),
    "digits": (
        "sequential: the tanh RNN is the least accurate cell (mean over seeds)",
        "permuted: the tanh RNN is the least accurate cell (mean over seeds)",
        "IRNN loses accuracy when the pixels are permuted (MNIST: 97.0 / 82.0)",
    ),
    "clipping": (
        "... and trains: with clipping at 10 and lr 1.0 every seed ends below the 1/6 baseline "
        "(val MSE < 0.1667)",
        "... and trains: with clipping at 1 and lr 1.0 every seed ends below the 1/6 baseline "
        "(val MSE < 0.1667)",
    ),
    "gradflow": (
        "tanh RNN: gamma=0.1 gives a flatter curve than gamma=1.0, seed by seed "
        "(|log10 ratio| smaller)",
        "tanh RNN: gamma=0.1 is flat, |log10 ratio| <= 1 for every seed",
        "tanh RNN: gamma=1.0 vanishes, log10 ratio < -1 for every seed",
        "LSTM: gamma=0.1 is flat, |log10 ratio| <= 1 for every seed",
        "LSTM: gamma=1.0 vanishes, log10 ratio < -1 for every seed",
        "GRU: gamma=0.1 gives a flatter curve than gamma=1.0, seed by seed (|log10 ratio| smaller)",
        "GRU: gamma=0.1 is flat, |log10 ratio| <= 1 for every seed",
    ),
    "depth": (
        "residual trains the deepest stack (4 layers) to a lower val MSE than the plain stack "
        "(mean over seeds)",
    ),
}
"""Finding key -> the criteria that were not met at :data:`COMMIT`, as the page worded them."""

_IRNN = "| IRNN (2 layers, lr 0.001) |"
_INDRNN = "| IndRNN (2 layers, lr 0.001) |"
_REMEDIES = "Val loss with a remedy over the same cell's without it"

ADDING = {
    ("IRNN", "100"): Quote(f"{_IRNN} 100 |", "0.00364 ± 0.0032 (n=2)"),
    ("IRNN", "200"): Quote(f"{_IRNN} 200 |", "0.00279 ± 0.00033 (n=2)"),
    ("IndRNN", "100"): Quote(f"{_INDRNN} 100 |", "0.0172 ± 0.023 (n=2)"),
    ("IndRNN", "200"): Quote(f"{_INDRNN} 200 |", "0.0502 ± 0.057 (n=2)"),
}
"""(arm, T) -> the adding-relu profile's val MSE at :data:`COMMIT` (torch's input init)."""

DIGITS = {
    ("IRNN", "False"): Quote("| IRNN |", "46.1 ± 3.9 (n=2)"),
    ("IRNN", "True"): Quote("| IRNN |", "52 ± 7.1 (n=2)"),
    ("IndRNN", "False"): Quote("| IndRNN |", "50.2 ± 0.79 (n=2)"),
    ("IndRNN", "True"): Quote("| IndRNN |", "40.2 ± 3.4 (n=2)"),
}
"""(arm, permuted) -> val accuracy % on the digits at :data:`COMMIT` (torch's input init)."""

RESIDUAL_TIME = Quote("Residual connections (through time and across layers)", "+1.1")
"""The depth profile's residual stacks at :data:`COMMIT` (step 1): the top layer's log10 ratio
through time at initialisation, ..."""
RESIDUAL_MSE = Quote("Residual connections (through time and across layers)", "9.86 ± 9.7 (n=6)")
"""... and their val MSE after training, over every depth."""

LAYERNORM = {
    ("forecast", "rnn"): Quote(_REMEDIES, "tanh RNN x141"),
    ("forecast", "lstm"): Quote(_REMEDIES, "LSTM x38.7"),
    ("forecast", "gru"): Quote(_REMEDIES, "GRU x6.2"),
    ("chars", "rnn"): Quote(_REMEDIES, "tanh RNN x0.954"),
    ("chars", "lstm"): Quote(_REMEDIES, "LSTM x0.933"),
    ("chars", "gru"): Quote(_REMEDIES, "GRU x0.947"),
}
"""(task, cell) -> val loss with layer norm over the same cell's without it at :data:`COMMIT`,
where layer norm normalised W_x x_t and W_h h_{t-1} separately (now ``terms: separate``)."""


def quotes() -> list[Quote]:
    """Every quoted figure (for the test that checks them against the old page)."""
    return [
        *ADDING.values(),
        *DIGITS.values(),
        RESIDUAL_TIME,
        RESIDUAL_MSE,
        *LAYERNORM.values(),
    ]


def verdict_then(key: str) -> str:
    """``partly reproduced, 7 of 8`` at :data:`COMMIT`; ``-`` for a finding it did not have."""
    if key not in VERDICTS:
        return "-"
    verdict, met = VERDICTS[key]
    return f"{verdict}, {met}"


def changes(key: str, failed_now: list[str], checks_now: list[str]) -> str:
    """The criteria met then and not now, and the other way round, as a sentence; ``""`` when
    the finding is new or no criterion changed."""
    if key not in VERDICTS:
        return ""
    before = set(FAILED.get(key, ()))
    lost = [c for c in failed_now if c not in before]
    gained = [c for c in before if c in checks_now and c not in failed_now]
    if not lost and not gained:
        return (
            f"**Since {COMMIT}** (the page before issue 14's corrections): the same criteria are "
            f"met ({VERDICTS[key][1]})."
        )
    parts = []
    if lost:
        parts.append("no longer met: " + "; ".join(lost))
    if gained:
        parts.append("met now and not then: " + "; ".join(gained))
    return (
        f"**Since {COMMIT}** (the page before issue 14's corrections; then "
        f"{verdict_then(key)} criteria met): " + ". ".join(parts) + ". Why is said below."
    )
