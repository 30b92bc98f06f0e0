"""What changed since the page before issue 14 (:data:`replication.previous.COMMIT`), and why.

Each function returns one "What we found" note of a finding whose results moved when issue 14
corrected the instrument: the figures then are quoted (:mod:`replication.previous`), the figures
now read from the sweeps. Pilot runs beside the sweeps (named as such on the page) checked the
cause; they ran with the profile's settings and ``rnnlab run --no-track``, e.g.::

    rnnlab run adding-relu.yaml --no-track --set seed=0 --set dataset.seq_len=100 \\
        --set 'remedies=[clip, {name: relu, input_std: null}]'

where adding-relu.yaml is the profile's base config (its ``sweep:`` section removed).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from replication.criteria import SOLVED
from replication.parts import CELL_NAMES, mean, mean_std
from replication.previous import ADDING, COMMIT, DIGITS, LAYERNORM, RESIDUAL_MSE, RESIDUAL_TIME
from replication.reader import Sweep, Trial, planned, plugin_manager


def torch_input_std(fan_in: int) -> float:
    """The standard deviation of torch's default weight init, U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    (nn.RNN's weights with fan_in = hidden size; nn.Linear's with fan_in = its inputs)."""
    return 1 / math.sqrt(3 * fan_in)


def input_std(t: Trial) -> str:
    """The input weights' std the run used (``remedy.relu.input_std`` or ``cell.input_std``)."""
    return t.params.get("remedy.relu.input_std") or t.params.get("cell.input_std") or "-"


def left_plateau(t: Trial) -> int | None:
    """The first evaluated step at which the val MSE fell below SOLVED."""
    return next((step for step, value in t.history if value < SOLVED), None)


def init_start(sweep: Sweep, std: float | None) -> dict[tuple[str, str], tuple[float, float]]:
    """An investigation beside the sweep: (arm, T) -> the MSE and the global gradient norm at
    initialisation, means over the sweep's seeds, on one training batch of the adding-relu
    profile's IRNN and IndRNN with input weights of std ``std`` (None: torch's init). rnnlab's
    own model and loss, one forward and backward pass per seed; it takes a few seconds."""
    import tempfile
    from pathlib import Path

    import torch
    import yaml

    from rnnlab.run import build, load_run_config

    torch.set_flush_denormal(True)
    registry = plugin_manager().registry()
    config = sweep.config
    hidden = config["cell"]["hidden_size"]
    value = "null" if std is None else f"{std:g}"  # null: the cell's own (torch's) init
    arms = {
        "IRNN": [
            f"cell={{name: rnn, hidden_size: {hidden}}}",
            f"remedies=[clip, {{name: relu, input_std: {value}}}]",
        ],
        "IndRNN": [
            f"cell={{name: indrnn, hidden_size: {hidden}, input_std: {value}}}",
            "remedies=[clip]",
        ],
    }
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.yaml"
        path.write_text(yaml.safe_dump(config))
        for name, overrides in arms.items():
            for T in sweep.values("T"):
                losses, norms = [], []
                for seed in sweep.seeds:
                    run = load_run_config(
                        path, registry, [*overrides, f"dataset.seq_len={T}", f"seed={seed}"]
                    )
                    torch.manual_seed(seed)
                    dataset, _, model = build(run, torch.device("cpu"))
                    x, y = next(dataset.batches("train", config["train"]["batch_size"]))
                    out, _ = model(x, probe=False)
                    loss = dataset.loss(out, y)
                    loss.backward()
                    grads = [p.grad.norm() for p in model.parameters() if p.grad is not None]
                    losses.append(float(loss.detach()))
                    norms.append(float(torch.stack(grads).norm()))
                found[name, T] = (mean(losses), mean(norms))
    return found


def input_init(sweep: Sweep, arm: Callable[[Trial], str | None]) -> str:
    """adding-relu.yaml: the IRNN's and IndRNN's input weights now start at N(0, 0.001^2)."""
    relu = [t for t in sweep.trials if arm(t) in ("IRNN", "IndRNN") and t.outcome == "completed"]
    if not relu:
        return ""
    hidden = int(sweep.config["cell"]["hidden_size"])
    inputs = 2  # the adding problem's channels: values and markers
    rows = []
    for name, T in sorted(
        {(str(arm(t)), t.get("T")) for t in relu}, key=lambda k: (k[0], int(k[1]))
    ):
        group = sorted(
            (t for t in relu if arm(t) == name and t.get("T") == T), key=lambda t: t.seed
        )
        left = ", ".join(f"s{t.seed} {left_plateau(t) or 'never'}" for t in group)
        then = ADDING.get((name, T))
        rows.append(
            f"{name} T={T}: then {then or '-'}, now {mean_std(t.loss for t in group)} "
            f"(step at which the val MSE first fell below {SOLVED}: {left})"
        )
    stds = sorted({input_std(t) for t in relu})
    ratio = {n: mean(t.ratio for t in relu if arm(t) == n) for n in ("IRNN", "IndRNN")}
    old, new = init_start(sweep, None), init_start(sweep, 0.001)
    start = "; ".join(
        f"{name} T={T}: MSE {old[name, T][0]:.3g} -> {new[name, T][0]:.3g}, gradient norm "
        f"{old[name, T][1]:.3g} -> {new[name, T][1]:.3g}"
        for name, T in sorted(old, key=lambda k: (k[0], int(k[1])))
    )
    paper = planned("adding-relu.paper").config["train"]
    return (
        f"**What changed since {COMMIT}: the input initialisation.** Issue 14 gave the IRNN "
        "(the relu remedy) and the IndRNN the input weights of Li et al.'s adding code, "
        f"N(0, 0.001^2) (these runs: input_std {', '.join(stds)}); before, they kept torch's "
        f"default, U(+-1/sqrt(fan_in)): std {torch_input_std(hidden):.3f} for the IRNN at "
        f"hidden {hidden}, {torch_input_std(inputs):.2f} for the IndRNN's {inputs} inputs. "
        "Val MSE then (torch's init) and now: " + "; ".join(rows) + ". "
        "Rerunning seed 0 at T=100 of both arms with `input_std: null` on today's code gives "
        f"{COMMIT}'s values again (pilot runs beside the sweep), so the initialisation alone "
        "made the difference. The new one starts gentler; at initialisation, on one training "
        "batch, torch's init -> N(0, 0.001^2) (this script, rnnlab's model and loss, means over "
        f"the seeds): {start}. The gradient still reaches the first step at the end of "
        f"training (log10 ratio IRNN {ratio['IRNN']:.1f}, IndRNN {ratio['IndRNN']:.1f}), so it "
        "is not vanishing that holds the nets back; our reading is that a net whose input "
        "weights start at 1e-3 first has to grow them before the markers matter, and the "
        f"profile's {sweep.config['train']['steps']} steps at lr "
        f"{sweep.config['train']['lr']:g} were sized with torch's init. A pilot run of the IRNN "
        "(seed 0, T=100) three times as long does fall below the "
        f"{SOLVED} line: it learns later, it is not broken. The IRNN and IndRNN criteria at "
        "T=100 now fail on the CPU profile's short training; Li et al. train far longer, as "
        f"adding-relu.paper.yaml does ({paper['steps']} steps at lr {paper['lr']:g}), which is "
        "where the claim is tested at its size."
    )


def input_init_digits(sweep: Sweep, arm: Callable[[Trial], str | None]) -> str:
    """digits.yaml: the same input initialisation on one pixel per step."""
    done = [t for t in sweep.trials if arm(t) in ("IRNN", "IndRNN") and t.outcome == "completed"]
    if not done:
        return ""
    rows = []
    for name in ("IRNN", "IndRNN"):
        for value, variant in (("False", "sequential"), ("True", "permuted")):
            group = [t for t in done if arm(t) == name and t.get("dataset.permute") == value]
            now = mean_std(100 * t.metrics.get("val/accuracy", math.nan) for t in group)
            rows.append(f"{name} {variant}: then {DIGITS.get((name, value), '-')}, now {now}")
    irnn = [100 * t.metrics.get("val/accuracy", math.nan) for t in done if arm(t) == "IRNN"]
    return (
        f"**What changed since {COMMIT}: the input initialisation** (as in section 1: N(0, "
        "0.001^2) input weights for the IRNN and IndRNN, where torch's default was used "
        "before). Val accuracy % then and now: " + "; ".join(rows) + ". "
        f"The IRNN now ends at most {max(irnn):.0f}% (chance 10%). Pilot runs beside the sweep "
        f"(seed 0): with `input_std: null` both cells give {COMMIT}'s accuracy again; trained "
        "three times as long (4500 steps), the IndRNN gains and passes its old accuracy, the "
        "IRNN stays near where it is. The source rnnlab cites for 0.001 is Li et al.'s adding "
        "code; on one pixel per step it slows the IRNN beyond this profile's budget. So the "
        f'criterion "IRNN loses accuracy when the pixels are permuted", not met at {COMMIT}, '
        "is met now, but between two accuracies near chance: it is not the paper's effect (a "
        "trained IRNN at 97% dropping to 82%), and this page does not count it as evidence "
        "for it. The IndRNN + batch-norm arm of digits.paper.yaml now normalises between "
        "layers, frame-wise, as Li et al.'s code does (issue 14), not inside the recurrence."
    )


def residual_step(sweep: Sweep, done: list[Trial], time_ratio: float) -> str:
    """depth.yaml: the residual connection through time now takes a step of 0.1, not 1."""
    if not done:
        return ""
    steps = sorted({t.params.get("remedy.residual.step", "-") for t in done})
    return (
        f"**What changed since {COMMIT}: residual connections through time take a step.** Then "
        "h_t = h_{t-1} + F(x_t, h_{t-1}), an Euler step of size 1: the state grew with every "
        f"step, the top layer's log10 ratio through time was {RESIDUAL_TIME} at "
        "initialisation (the gradient grew backward in time), and the residual stacks ended "
        f"at val MSE {RESIDUAL_MSE}, far above the baseline. Now h_t = h_{{t-1}} + step * "
        f"F(x_t, h_{{t-1}}) with step {', '.join(steps)} (the remedy's default, measured on the "
        "flagship's settings, rnnlab_remedies/residual.py; AntisymmetricRNN and Lipschitz RNN "
        f"use such a step): the ratio is {time_ratio:+.1f} and the val MSE "
        f"{mean_std(t.loss for t in done)}, at the baseline rather than far above it. The "
        "stacks no longer blow up, but in 600 steps they do not learn the task either, as the "
        "plain stack does not; the criterion on training still fails, the gradient one still "
        "holds."
    )


def layernorm(task: str, sweep: Sweep) -> str:
    """forecast.yaml and chars.yaml: layer norm now normalises the summed pre-activation."""
    cells = [c for c in sweep.values("cell") if (task, c) in LAYERNORM]
    if not cells or "layernorm" not in sweep.values("remedies"):
        return ""

    def factor(cell: str) -> str:
        with_ = mean(
            t.loss for t in sweep.pick(cell=cell, remedies="layernorm") if t.outcome == "completed"
        )
        without = mean(
            t.loss for t in sweep.pick(cell=cell, remedies="none") if t.outcome == "completed"
        )
        return f"x{with_ / without:.3g}"

    rows = "; ".join(
        f"{CELL_NAMES.get(c, c)}: then {str(LAYERNORM[task, c]).split()[-1]}, now {factor(c)}"
        for c in cells
    )
    why = (
        "With the series' one input channel, W_x x_t is x_t times one weight vector, and "
        "normalising it over the hidden units leaves sign(x_t): the old form showed the net "
        "only whether each sample was above or below the mean. Normalising the sum keeps the "
        "input's size. What remains of the gap is the training budget: in pilot runs beside "
        "the sweep (tanh RNN, seed 0) layer norm reached the unnormalised net's val loss with "
        "three times the steps, or at lr 3e-3 instead of 1e-2."
        if task == "forecast"
        else "Here the input is one-hot over the characters, so the separate form (Ba et al.'s "
        "LN-LSTM, `terms: separate`) was valid and is kept as an option; with one seed these "
        "changes have no error bar."
    )
    return (
        f"**What changed since {COMMIT}: layer norm.** Then it normalised W_x x_t and W_h "
        "h_{t-1} separately; now (issue 14) it normalises each gate's summed pre-activation "
        "W_x x_t + W_h h_{t-1}, as Ba et al. 2016's LN-RNN. Val loss with layer norm over the "
        f"same cell's without it: {rows}. {why}"
    )
