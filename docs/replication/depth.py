"""6. Residual connections and gating on a deeper stack: ||dL/dh|| across layers and time."""

from __future__ import annotations

import math

import numpy as np

from replication import changes
from replication.criteria import AT_BASELINE, ORDER
from replication.figures import geometric_mean, pyplot, save
from replication.parts import Check, Finding, Result, mean, mean_std, seeds_text, table
from replication.reader import Sweep, Trial


def remedy_arm(t: Trial | str) -> str:
    """A trial's (or a remedies label's) arm: ``clip+residual`` -> ``residual``; ``clip`` ->
    ``plain``."""
    label = t if isinstance(t, str) else t.get("remedies")
    names = [n.split("[")[0] for n in label.split("+") if not n.startswith("clip")]
    return "+".join(names) or "plain"


def depth_ratios(t: Trial) -> dict[str, float]:
    """At initialisation: log10 of ||dL/dh|| at (bottom layer, t=1) over (top layer, t=T) and its
    two parts, through time in the top layer and across depth at t=T."""
    from rnnlab.run import FLOOR

    if t.flow is None:
        return {}
    n = np.log10(np.maximum(t.flow[0], FLOOR))  # [layer, t] at the first probe
    return {
        "time": n[-1, 0] - n[-1, -1],
        "depth": n[0, -1] - n[-1, -1],
        "both": n[0, 0] - n[-1, -1],
    }


def depth(sweeps: list[Sweep], figure: str) -> Result:
    s = sweeps[0]
    depths = sorted(s.values("layers"), key=int)
    arms = list(dict.fromkeys(remedy_arm(t) for t in s.trials))
    rows = []
    both: dict[tuple[str, str], float] = {}
    loss: dict[tuple[str, str], float] = {}
    for arm in arms:
        for L in depths:
            group = [t for t in s.pick(layers=L) if remedy_arm(t) == arm]
            parts = [depth_ratios(t) for t in group]
            both[arm, L] = mean(p.get("both", math.nan) for p in parts)
            loss[arm, L] = mean(t.loss for t in group if t.outcome == "completed")
            rows.append(
                [
                    arm,
                    L,
                    *(
                        mean_std(p.get(k, math.nan) for p in parts)
                        for k in ("time", "depth", "both")
                    ),
                    mean_std(t.loss for t in group if t.outcome == "completed"),
                    f"{sum(t.outcome == 'diverged' for t in group)} of {len(group)}",
                ]
            )
    head = [
        "remedy",
        "layers",
        "through time (top layer)",
        "across depth (t=T)",
        "bottom t=1 vs top t=T",
        "val MSE after training",
        "diverged",
    ]
    shallow, deep = depths[0], depths[-1]
    checks = [
        Check(
            f"the plain stack loses more gradient at {deep} layers than at {shallow} "
            "(bottom t=1 vs top t=T, mean over seeds)",
            both["plain", deep] < both["plain", shallow],
        )
    ]
    for arm in (a for a in arms if a != "plain"):
        checks.append(
            Check(
                f"{arm} keeps at least {ORDER:g} order of magnitude more gradient than the plain "
                "stack at every depth (bottom t=1 vs top t=T, mean over seeds)",
                all(both[arm, L] >= both["plain", L] + ORDER for L in depths),
            )
        )
        checks.append(
            Check(
                f"{arm} trains the deepest stack ({deep} layers) to a lower val MSE than the "
                "plain stack (mean over seeds)",
                loss[arm, deep] < loss["plain", deep],
            )
        )
    return Result(table(head, rows), checks, _depth_figure(s, arms, depths, figure))


def _depth_figure(s: Sweep, arms: list[str], depths: list[str], name: str) -> str:
    from rnnlab.run import FLOOR

    plt = pyplot()
    fig, grid = plt.subplots(
        len(arms),
        len(depths),
        figsize=(3.4 * len(depths), 2.0 * len(arms) + 0.6),
        squeeze=False,
        layout="constrained",
    )
    maps = {}
    for arm in arms:
        for L in depths:
            curves = [
                t.flow[0] for t in s.pick(layers=L) if remedy_arm(t) == arm and t.flow is not None
            ]
            if curves:
                maps[arm, L] = np.log10(np.maximum(geometric_mean(curves), FLOOR))
    values = np.concatenate([m.ravel() for m in maps.values()]) if maps else np.zeros(1)
    low, high = float(np.percentile(values, 2)), float(values.max())
    image = None
    for i, arm in enumerate(arms):
        for j, L in enumerate(depths):
            ax = grid[i, j]
            if (arm, L) in maps:
                image = ax.imshow(
                    maps[arm, L], aspect="auto", origin="lower", cmap="cividis", vmin=low, vmax=high
                )
            ax.set_title(f"{arm}, {L} layers", fontsize=8)
            ax.set_yticks(range(int(L)), [str(k + 1) for k in range(int(L))], fontsize=7)
            ax.set_ylabel("layer", fontsize=7)
            ax.tick_params(labelsize=7)
            if i == len(arms) - 1:
                ax.set_xlabel("time step t", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=grid, label="log10 ||dL/dh_t|| at initialisation", shrink=0.8)
    return save(fig, name)


# --- the page ----------------------------------------------------------------------------------


def depth_notes(sweeps: list[Sweep], result: Result) -> list[str]:
    s = sweeps[0]

    def part(arm: str, key: str) -> float:
        return mean(depth_ratios(t).get(key, math.nan) for t in s.trials if remedy_arm(t) == arm)

    def runs(arm: str) -> list[Trial]:
        return [t for t in s.trials if remedy_arm(t) == arm]

    arms = list(dict.fromkeys(remedy_arm(t) for t in s.trials))
    notes = [
        "Read the heatmaps from the top-right corner (the top layer at the last step, where "
        "the loss enters) to the bottom-left (the first layer at the first step). In the plain "
        f"stack the gradient falls by {-part('plain', 'time'):.1f} orders of magnitude across "
        f"the {s.config['dataset']['seq_len']} steps of the top layer, and by "
        f"{-part('plain', 'depth'):.1f} across the layers at t=T (means over depths and "
        "seeds): at this length time does the vanishing, depth adds little."
    ]
    if "residual" in arms:
        done = [t for t in runs("residual") if t.outcome == "completed"]
        diverged = sum(t.outcome == "diverged" for t in runs("residual"))
        trained = mean(t.loss for t in done)
        step = ", ".join(sorted({t.params.get("remedy.residual.step", "-") for t in done}))
        notes.append(
            "Residual connections (through time, h_t = h_{t-1} + step * tanh(...) with step "
            f"{step}, and across layers) leave little to vanish: the top layer's log10 ratio "
            f"through time is {part('residual', 'time'):+.1f} at initialisation, because the "
            "identity path adds I to the step's Jacobian. Nothing contracts the state either: "
            "each step adds a small tanh increment to it. After training the residual stacks "
            f"end at val MSE {mean_std(t.loss for t in done)} over all depths"
            + (f" ({diverged} diverged)" if diverged else " (none diverged)")
            + (
                f", at the 1/6 baseline or above it (val MSE > {AT_BASELINE}, section 1's "
                "'at baseline'): the gradient criterion holds, the training one does not. "
                "Residual IndRNN bounds its recurrent weight as well, which a tanh cell with an "
                "identity shortcut does not."
                if trained > AT_BASELINE
                else "."
            )
        )
        notes.append(changes.residual_step(s, done, part("residual", "time")))
    if "gating" in arms:
        notes.append(
            f"The learned gate keeps the fall through time to {-part('gating', 'time'):.1f} "
            f"orders at initialisation (plain: {-part('plain', 'time'):.1f}); with its bias at 0 "
            "it starts about half open, so h_{t-1} passes at about half strength per step. The "
            "gated stacks end at val MSE "
            + "; ".join(
                f"{L} layers: {seeds_text(s.pick(layers=L, remedies=arm), lambda t: t.loss)}"
                for L in sorted(s.values("layers"), key=int)
                for arm in s.values("remedies")
                if remedy_arm(arm) == "gating"
            )
            + "."
        )
    return notes


# --- the findings ------------------------------------------------------------------------------


FINDING = Finding(
    "depth",
    "Residual connections and gating on a deeper stack",
    ("depth",),
    depth,
    "Residual connections across stacked layers (Residual IndRNN: char-PTB 1.19-1.21 bits "
    "per character against the LSTM's 1.36) and through time (h_t = h_{t-1} + F(x_t, "
    "h_{t-1})); gating (LSTM, GRU, or a learned update gate around any cell). The claim "
    "measured: identity and gated paths carry ||dL/dh|| across depth and time where a plain "
    "tanh stack loses it, and let the deep stack train.",
    "A narrow tanh stack on a short adding problem with a few hundred steps: the point is "
    "the gradient at initialisation across layers and steps, and whether training then "
    "moves.",
    depth_notes,
)
