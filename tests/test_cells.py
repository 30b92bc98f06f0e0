"""The built-in cells against independent implementations: nn.RNN / nn.LSTM / nn.GRU with copied
weights (as pytorch's benchmarks/fastrnns/custom_lstms.py tests its LSTM), the tutorial SimpleRNN,
IndRNN's bound, and the gradient-flow probes against a separate torch.autograd computation."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import ValidationError
from rnnlab_cells.indrnn import IndRNNCell
from rnnlab_cells.simple import SimpleRNN
from rnnlab_cells.twins import ElmanCell, GRUCell, LSTMCell
from torch import Tensor, nn

from rnnlab.base import Cell, Params, State, TaskKind
from rnnlab.errors import ConfigError
from rnnlab.run import build_model, flow_curve, run_loop

TOL: dict[str, Any] = {"rtol": 1e-5, "atol": 1e-5}
T, B, I, H = 7, 3, 4, 6  # noqa: E741 - the usual names of the sizes

TWINS: list[tuple[str, type[Cell], Params, Any]] = [
    ("rnn-tanh", ElmanCell, ElmanCell.Params(), lambda: nn.RNN(I, H, nonlinearity="tanh")),
    (
        "rnn-relu",
        ElmanCell,
        ElmanCell.Params(nonlinearity="relu"),
        lambda: nn.RNN(I, H, nonlinearity="relu"),
    ),
    ("lstm", LSTMCell, LSTMCell.Params(), lambda: nn.LSTM(I, H)),
    ("gru", GRUCell, GRUCell.Params(), lambda: nn.GRU(I, H)),
]


def copy_weights(cell: Cell, torch_module: nn.RNNBase) -> None:
    """Copy the torch module's parameters into the cell by name (weight_ih_l0, ...)."""
    with torch.no_grad():
        for name, value in torch_module.named_parameters():
            getattr(cell.rnn, name).copy_(value)


def torch_state(module: nn.RNNBase, state: State) -> Any:
    if isinstance(module, nn.LSTM):
        return (state[0].unsqueeze(0), state[1].unsqueeze(0))
    return state[0].unsqueeze(0)


def loop_with_state(cell: Cell, x: Tensor, state: State) -> tuple[Tensor, State]:
    """The step path, keeping the final state (run_loop returns only the h_t)."""
    hs = []
    for t, u_t in enumerate(cell.project_inputs(x).unbind(0)):
        h, state = cell.step(u_t, state, t)
        hs.append(h)
    return torch.stack(hs), state


@pytest.mark.parametrize(("label", "cls", "params", "make_twin"), TWINS, ids=[t[0] for t in TWINS])
@pytest.mark.parametrize("path", ["step", "fused"])
def test_cell_equals_its_torch_twin(
    label: str, cls: type[Cell], params: Params, make_twin: Any, path: str
) -> None:
    torch.manual_seed(0)
    twin = make_twin()
    torch.manual_seed(1)  # different initial weights: the copy must do the work
    cell = cls(I, H, params)
    copy_weights(cell, twin)
    x = torch.randn(T, B, I)
    start = tuple(torch.randn(B, H) for _ in cell.init_state(B))
    expected, expected_last = twin(x, torch_state(twin, start))
    if path == "fused":
        assert cell.has_fused
        out, last = cell.forward_fused(x, start)
    else:
        out, last = loop_with_state(cell, x, start)
        torch.testing.assert_close(run_loop(cell, x, start, None), expected, **TOL)
    torch.testing.assert_close(out, expected, **TOL)
    finals = expected_last if isinstance(expected_last, tuple) else (expected_last,)
    for mine, theirs in zip(last, finals, strict=True):
        torch.testing.assert_close(mine, theirs[0], **TOL)
    # gradients of one loss w.r.t. the weights agree too
    target = torch.randn(T, B, H)
    mine_grads = torch.autograd.grad(((out - target) ** 2).sum(), list(cell.rnn.parameters()))  # type: ignore[union-attr]
    their_grads = torch.autograd.grad(((expected - target) ** 2).sum(), list(twin.parameters()))
    for a, b in zip(mine_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("cls", [ElmanCell, LSTMCell, GRUCell])
def test_model_uses_the_fused_path_only_when_not_probing(
    cls: type[Cell], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = build_model(
        cls,
        cls.Params(),
        input_size=I,
        hidden_size=H,
        layers=2,
        output_size=1,
        kind=TaskKind.REGRESSION_LAST,
    )
    calls = {"fused": 0, "step": 0}
    for cell in model.layers():
        fused, step = cell.forward_fused, cell.step

        def spy_fused(x: Tensor, state: State, fused: Any = fused) -> Any:
            calls["fused"] += 1
            return fused(x, state)

        def spy_step(u: Tensor, state: State, t: int, step: Any = step) -> Any:
            calls["step"] += 1
            return step(u, state, t)

        monkeypatch.setattr(cell, "forward_fused", spy_fused)
        monkeypatch.setattr(cell, "step", spy_step)
    x = torch.randn(T, B, I)
    unprobed, probes = model(x, probe=False)
    assert calls == {"fused": 2, "step": 0} and probes == []
    probed, probes = model(x, probe=True)
    assert calls == {"fused": 2, "step": 2 * T} and len(probes) == 2
    torch.testing.assert_close(probed, unprobed, **TOL)


# --- IndRNN ----------------------------------------------------------------------------------


def test_indrnn_bounds_the_recurrent_weight_and_defaults_to_relu() -> None:
    params = IndRNNCell.Params(recurrent_max=0.8)
    assert IndRNNCell.Params().nonlinearity == "relu"
    torch.manual_seed(0)
    cell = IndRNNCell(I, H, params)
    assert ((cell.u >= 0.0) & (cell.u <= 0.8)).all()  # uniform init in [min, max]
    with torch.no_grad():
        cell.u.copy_(torch.tensor([3.0, -3.0, 0.5, -0.5, 0.8, 100.0]))
    bounded = torch.tensor([0.8, -0.8, 0.5, -0.5, 0.8, 0.8])
    torch.testing.assert_close(cell.recurrent_weight(), torch.diag(bounded))
    x, h = torch.randn(B, I), torch.randn(B, H)
    out, state = cell(x, (h,))
    expected = torch.relu(cell.input(x) + bounded * h)
    torch.testing.assert_close(out, expected)
    assert (out >= 0).all() and (out == 0).any()  # relu: negative pre-activations cut to 0
    # the bound holds for the gradient too: |dh_t/dh_{t-1}| <= recurrent_max per unit
    h0 = torch.ones(B, H, requires_grad=True)
    hs = run_loop(cell, torch.zeros(T, B, I), (h0,), None)
    (grad,) = torch.autograd.grad(hs[-1].sum(), h0)
    assert (grad.abs() <= 0.8**T + 1e-6).all()


def test_indrnn_weight_pushed_to_the_bound_still_learns() -> None:
    # the training loop calls constrain() after every optimizer step, as the paper clips u
    torch.manual_seed(0)
    cell = IndRNNCell(I, H, IndRNNCell.Params(recurrent_max=1.0))
    optimizer = torch.optim.SGD(cell.parameters(), lr=1.0)
    h0, x = torch.ones(B, H), torch.zeros(T, B, I)
    for sign in (-1.0, -1.0, -1.0, 1.0):  # three steps pushing |u| up, then one pulling it down
        optimizer.zero_grad()
        (sign * run_loop(cell, x, (h0,), None)[-1].sum()).backward()
        if sign < 0:
            optimizer.step()
            cell.constrain()
    assert (cell.u.abs() <= 1.0).all()
    assert cell.u.grad is not None and (cell.u.grad != 0).all()


def test_indrnn_params_reject_an_empty_init_range() -> None:
    with pytest.raises(ValidationError):
        IndRNNCell.Params(recurrent_min=2.0, recurrent_max=1.0)
    with pytest.raises(ValidationError, match="top_recurrent_min"):
        IndRNNCell.Params(top_recurrent_min=1.5)
    with pytest.raises(
        ConfigError, match=r"cell.recurrent_max: .*a number > 0 or 'auto' \(got 'aut'\)"
    ):
        resolved_indrnn({"name": "adding"}, {"recurrent_max": "aut"})
    with pytest.raises(ConfigError, match=r"cell.top_recurrent_min: .*>= 0, null or 'auto'"):
        resolved_indrnn({"name": "adding"}, {"top_recurrent_min": -1})


def test_indrnn_input_weights_start_as_in_li_et_al_code() -> None:
    """N(0, 0.001^2) (``lasagne.init.Normal(0.001)``, a std) and zero biases by default; null
    keeps nn.Linear's own initialisation."""
    torch.manual_seed(0)
    cell = IndRNNCell(64, 128)
    weight = cell.input_weight().detach()
    assert 0.0009 < float(weight.std()) < 0.0011 and not cell.input.bias.any()
    torch.manual_seed(0)
    linear = nn.Linear(I, H)
    torch.manual_seed(0)
    kept = IndRNNCell(I, H, IndRNNCell.Params(input_std=None))
    assert torch.equal(kept.input.weight, linear.weight)


def resolved_indrnn(dataset: dict[str, Any], cell: dict[str, Any], layers: int = 1) -> Any:
    from rnnlab.run import Source, resolve
    from rnnlab.testing import installed_registry

    data = {"dataset": dataset, "cell": {"name": "indrnn", **cell}, "model": {"layers": layers}}
    return resolve(Source(path=None, data=data), installed_registry())


def test_indrnn_recurrent_max_auto_follows_the_task_length() -> None:
    """auto = 2^(1/T) (Li et al.: U_bound = MAG^(1/T), MAG = 2), resolved with the config and
    recorded as the value in the run's params; a cell made directly refuses an unresolved auto."""
    run = resolved_indrnn({"name": "adding", "seq_len": 200}, {"recurrent_max": "auto"})
    assert run.cell.params.recurrent_max == pytest.approx(2 ** (1 / 200))
    assert float(run.flat_params()["cell.recurrent_max"]) == pytest.approx(1.003472, abs=1e-6)
    assert run.as_dict()["cell"]["recurrent_max"] == pytest.approx(2 ** (1 / 200))
    copy = resolved_indrnn({"name": "copy", "seq_len": 30}, {"recurrent_max": "auto"})
    assert copy.cell.params.recurrent_max == pytest.approx(2 ** (1 / 50))  # T = delay + 20
    with pytest.raises(ValueError, match="resolve_params"):
        IndRNNCell(I, H, IndRNNCell.Params(recurrent_max="auto"))


def test_indrnn_top_layer_starts_near_one_on_a_last_step_task() -> None:
    """Li et al.'s code starts the last IndRNN layer's u in [2^(-1/T), bound] and the others in
    [0, bound] ("only the last one not all", README), on last-step tasks; on an every-step task
    ``auto`` leaves the top layer like the others."""
    T_ = 50
    run = resolved_indrnn(
        {"name": "adding", "seq_len": T_}, {"recurrent_max": "auto", "top_recurrent_min": "auto"}
    )
    low, high = 2 ** (-1 / T_), 2 ** (1 / T_)
    assert run.cell.params.top_recurrent_min == pytest.approx(low)
    torch.manual_seed(0)
    model = build_model(
        IndRNNCell,
        run.cell.params,
        input_size=2,
        hidden_size=64,
        layers=3,
        output_size=1,
        kind=TaskKind.REGRESSION_LAST,
    )
    cells: list[Any] = model.layers()
    for cell in cells[:-1]:
        u = cell.u.detach()
        assert float(u.min()) < 0.5 and float(u.max()) <= high
    top = cells[-1].u.detach()
    assert float(top.min()) >= low and float(top.max()) <= high
    every = resolved_indrnn({"name": "copy", "seq_len": 10}, {"top_recurrent_min": "auto"})
    assert every.cell.params.top_recurrent_min == 0.0  # recurrent_min: no long-memory layer
    bad = {"recurrent_max": 0.5, "top_recurrent_min": "auto"}
    with pytest.raises(ConfigError, match="key cell: top_recurrent_min"):
        resolved_indrnn({"name": "adding", "seq_len": 10}, bad)


# --- SimpleRNN (the tutorial) ----------------------------------------------------------------


class TutorialRNN(nn.Module):
    """The tutorial's class, verbatim (apart from type hints)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(input_size + hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, input: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        combined = torch.cat((input, hidden), 1)
        hidden = self.i2h(combined)
        output = self.i2o(combined)
        output = self.softmax(output)
        return output, hidden

    def initHidden(self) -> Tensor:  # noqa: N802 - the tutorial's name
        return torch.zeros(1, self.hidden_size)


def test_simple_rnn_reproduces_the_tutorial_example() -> None:
    rnn = SimpleRNN(10, 20, SimpleRNN.Params(output_size=2))
    output, hidden = rnn.tutorial_forward(torch.randn(1, 10), rnn.init_hidden())
    assert output.shape == (1, 2) and hidden.shape == (1, 20)
    torch.testing.assert_close(output.exp().sum(dim=1), torch.ones(1))
    assert (output <= 0).all()  # log-probabilities


def test_simple_rnn_equals_the_tutorial_class() -> None:
    torch.manual_seed(0)
    ours = SimpleRNN(10, 20, SimpleRNN.Params(output_size=2))
    theirs = TutorialRNN(10, 20, 2)
    theirs.load_state_dict(ours.state_dict())
    hidden_ours, hidden_theirs = ours.init_hidden(), theirs.initHidden()
    for x in torch.randn(5, 1, 10):
        out_ours, hidden_ours = ours.tutorial_forward(x, hidden_ours)
        out_theirs, hidden_theirs = theirs(x, hidden_theirs)
        torch.testing.assert_close(out_ours, out_theirs, **TOL)
        torch.testing.assert_close(hidden_ours, hidden_theirs, **TOL)
    # the rnnlab cell interface computes the same hidden state
    h, state = ours(x, (hidden_ours,))
    torch.testing.assert_close(h, theirs(x, hidden_theirs)[1], **TOL)


@pytest.mark.parametrize("nonlinearity", ["none", "tanh", "relu"])
def test_simple_rnn_step_path_equals_forward(nonlinearity: str) -> None:
    torch.manual_seed(0)
    cell = SimpleRNN(I, H, SimpleRNN.Params.model_validate({"nonlinearity": nonlinearity}))
    x = torch.randn(T, B, I)
    state: State = (torch.randn(B, H),)
    loop = run_loop(cell, x, state, None)
    for t in range(T):
        h, state = cell(x[t], state)
        torch.testing.assert_close(loop[t], h, **TOL)


# --- probes ----------------------------------------------------------------------------------

TORCH_CELLS = {
    "rnn": (ElmanCell, nn.RNNCell),
    "lstm": (LSTMCell, nn.LSTMCell),
    "gru": (GRUCell, nn.GRUCell),
}


def manual_hidden_states(
    cells: list[nn.RNNCellBase], x: Tensor
) -> tuple[list[list[Tensor]], Tensor]:
    """A separate loop over torch's own cells: every layer's h_t, and the top layer's outputs."""
    every: list[list[Tensor]] = []
    inputs = list(x.unbind(0))
    for cell in cells:
        h = torch.zeros(x.shape[1], cell.hidden_size)
        c = torch.zeros_like(h)
        hs = []
        for x_t in inputs:
            if isinstance(cell, nn.LSTMCell):
                h, c = cell(x_t, (h, c))
            else:
                h = cell(x_t, h)
            hs.append(h)
        every.append(hs)
        inputs = hs
    return every, torch.stack(inputs)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", [TaskKind.REGRESSION_LAST, TaskKind.CLASSIFY_EVERY])
def test_probes_equal_an_independent_autograd_computation(
    name: str, layers: int, kind: TaskKind
) -> None:
    ours_cls, torch_cls = TORCH_CELLS[name]
    torch.manual_seed(0)
    model = build_model(
        ours_cls,
        ours_cls.Params(),
        input_size=I,
        hidden_size=H,
        layers=layers,
        output_size=3,
        kind=kind,
    )
    cells = [torch_cls(I if layer == 0 else H, H) for layer in range(layers)]
    head = nn.Linear(H, 3)
    with torch.no_grad():
        for ours, theirs in zip(model.layers(), cells, strict=True):
            for param in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(theirs, param).copy_(getattr(ours, param))
        head.load_state_dict(model.head.state_dict())
    x = torch.randn(T, B, I)
    target = torch.randn(T, B, 3) if kind is TaskKind.CLASSIFY_EVERY else torch.randn(B, 3)

    out, probes = model(x, probe=True)
    ((out - target) ** 2).mean().backward()

    every, top = manual_hidden_states(cells, x)
    manual_out = head(top) if kind is TaskKind.CLASSIFY_EVERY else head(top[-1])
    torch.testing.assert_close(out, manual_out, **TOL)
    loss = ((manual_out - target) ** 2).mean()
    grads = torch.autograd.grad(loss, [h for hs in every for h in hs])
    for layer, probe in enumerate(probes):
        assert probe.grad is not None
        expected = torch.stack(grads[layer * T : (layer + 1) * T])
        torch.testing.assert_close(probe.grad, expected, **TOL)
        curve = expected.double().norm(dim=-1).mean(dim=1).numpy()
        assert flow_curve(probe) == pytest.approx(curve, rel=1e-5, abs=1e-9)
