"""What each built-in remedy does, checked numerically: clip, relu, batchnorm, layernorm,
residual, gating, and the order in which remedies act on a cell."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from rnnlab_cells.indrnn import IndRNNCell
from rnnlab_cells.simple import SimpleRNN
from rnnlab_cells.twins import ElmanCell, GRUCell, LSTMCell
from rnnlab_remedies.clip import GradientClipping
from rnnlab_remedies.gating import GatedCell, Gating
from rnnlab_remedies.norm import BatchNormRemedy, LayerNormRemedy, TimeBatchNorm
from rnnlab_remedies.relu import IdentityReLU
from rnnlab_remedies.residual import DEFAULT_STEP, Residual, ResidualCell
from torch import nn

from rnnlab.base import Cell, Remedy, State, TaskKind
from rnnlab.errors import IncompatibleError
from rnnlab.run import SequenceModel, Source, build_model, resolve, run_loop
from rnnlab.testing import TINY_ADDING, installed_registry, short_run

TOL: dict[str, Any] = {"rtol": 1e-5, "atol": 1e-5}
T, B, I, H = 5, 6, 3, 4  # noqa: E741 - the usual names of the sizes


def model_with(cell_cls: type[Cell], *remedies: Remedy, layers: int = 1) -> SequenceModel:
    torch.manual_seed(0)
    return build_model(
        cell_cls,
        cell_cls.Params(),
        input_size=I,
        hidden_size=H,
        layers=layers,
        output_size=2,
        kind=TaskKind.REGRESSION_LAST,
        remedies=remedies,
    )


def zeros(cell: Cell, batch: int = B) -> State:
    return cell.init_state(batch)


# --- clip ------------------------------------------------------------------------------------


def parameters_with_grads(*grads: list[float]) -> list[nn.Parameter]:
    params = []
    for g in grads:
        p = nn.Parameter(torch.zeros(len(g)))
        p.grad = torch.tensor(g)
        params.append(p)
    return [*params, nn.Parameter(torch.zeros(2))]  # a parameter without a gradient too


def test_clip_norm_scales_to_the_threshold_only_when_exceeded() -> None:
    clip = GradientClipping(GradientClipping.Params(mode="norm", threshold=1.0))
    params = parameters_with_grads([3.0, 0.0], [0.0, 4.0])  # global norm 5
    assert clip.after_backward(params, 5.0) == {"grad/clipped": 1.0}
    torch.testing.assert_close(params[0].grad, torch.tensor([0.6, 0.0]), **TOL)
    torch.testing.assert_close(params[1].grad, torch.tensor([0.0, 0.8]), **TOL)
    params = parameters_with_grads([0.3, 0.0], [0.0, 0.4])  # norm 0.5: left alone
    assert clip.after_backward(params, 0.5) == {"grad/clipped": 0.0}
    assert torch.equal(params[1].grad, torch.tensor([0.0, 0.4]))  # type: ignore[arg-type]


def test_clip_value_clamps_each_element() -> None:
    clip = GradientClipping(GradientClipping.Params(mode="value", threshold=2.0))
    params = parameters_with_grads([3.0, -0.5], [-4.0, 1.0])
    assert clip.after_backward(params, 5.1) == {"grad/clipped": 1.0}
    assert torch.equal(params[0].grad, torch.tensor([2.0, -0.5]))  # type: ignore[arg-type]
    assert torch.equal(params[1].grad, torch.tensor([-2.0, 1.0]))  # type: ignore[arg-type]
    params = parameters_with_grads([1.5, -2.0])
    assert clip.after_backward(params, 2.5) == {"grad/clipped": 0.0}
    assert torch.equal(params[0].grad, torch.tensor([1.5, -2.0]))  # type: ignore[arg-type]


@pytest.mark.parametrize(("threshold", "fired"), [(1e-6, 1.0), (1e6, 0.0)])
def test_clip_is_recorded_in_a_training_run(threshold: float, fired: float) -> None:
    remedy = {"name": "clip", "mode": "norm", "threshold": threshold}
    _, tracker = short_run(
        installed_registry(),
        {"name": "adding", **TINY_ADDING},
        {"name": "rnn", "hidden_size": 8},
        [remedy],
    )
    assert {v for _, v in tracker.history["grad/clipped"]} == {fired}


# --- relu (IRNN) -----------------------------------------------------------------------------


def test_relu_sets_identity_recurrence_zero_biases_and_relu() -> None:
    model = model_with(ElmanCell, IdentityReLU(IdentityReLU.Params(scale=0.5)))
    (cell,) = model.layers()
    assert isinstance(cell, ElmanCell) and cell.rnn.nonlinearity == "relu"
    assert torch.equal(cell.weight_hh, 0.5 * torch.eye(H))
    assert not cell.bias_hh.any() and not cell.bias_ih.any()
    x = torch.randn(T, B, I)
    loop = run_loop(cell, x, zeros(cell), None)
    assert (loop >= 0).all() and (loop == 0).any()  # relu, not tanh
    manual = torch.relu(x[0] @ cell.weight_ih.T)
    torch.testing.assert_close(loop[0], manual, **TOL)
    fused, _ = cell.forward_fused(x, zeros(cell))  # the fused module follows the switch to relu
    torch.testing.assert_close(fused, loop, **TOL)


def test_relu_draws_the_input_weights_as_li_et_al_code() -> None:
    """N(0, 0.001^2) by default (Li et al.'s IRNN: lasagne.init.Normal(0.001), a std); null
    keeps the cell's own initialisation."""
    torch.manual_seed(0)
    cell = IdentityReLU().apply_cell(ElmanCell(64, 128), 0)
    weight = cell.input_weight().detach()  # type: ignore[union-attr]
    assert 0.0009 < float(weight.std()) < 0.0011 and abs(float(weight.mean())) < 1e-4
    torch.manual_seed(0)
    fresh = ElmanCell(I, H)
    torch.manual_seed(0)
    kept = IdentityReLU(IdentityReLU.Params(input_std=None)).apply_cell(ElmanCell(I, H), 0)
    assert torch.equal(kept.weight_ih, fresh.weight_ih)  # type: ignore[union-attr]
    model = model_with(SimpleRNN, IdentityReLU(IdentityReLU.Params(input_std=0.5)))
    (simple,) = model.layers()
    assert 0.2 < float(simple.input_weight().detach().std()) < 1  # type: ignore[union-attr]


def test_relu_input_std_needs_the_cells_input_weight() -> None:
    class NoInputWeight(ElmanCell):
        def input_weight(self) -> None:  # type: ignore[override]
            return None

    with pytest.raises(ValueError, match="input_std: null"):
        IdentityReLU().apply_cell(NoInputWeight(I, H), 0)
    IdentityReLU(IdentityReLU.Params(input_std=None)).apply_cell(NoInputWeight(I, H), 0)


def test_relu_on_lstm_is_incompatible() -> None:
    # that a config is refused for it: test_config.py::test_incompatible_remedy_is_refused_...
    reason = IdentityReLU.incompatibility("lstm", LSTMCell, [], 1)
    assert isinstance(reason, str) and "identity_init" in reason


# --- batchnorm -------------------------------------------------------------------------------


def norms_of(cell: Cell) -> list[nn.Module]:
    return [
        n
        for n in (getattr(cell, a, None) for a in ("norm_input", "norm_hidden", "norm_cell"))
        if n is not None
    ]


@pytest.mark.parametrize("cls", [ElmanCell, LSTMCell, GRUCell])
def test_batchnorm_gamma_starts_at_a_tenth_and_disables_the_fused_path(
    cls: type[Cell], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = model_with(cls, BatchNormRemedy())
    (cell,) = model.layers()
    found = norms_of(cell)
    assert len(found) == (3 if cls is LSTMCell else 2)
    for norm in found:
        assert isinstance(norm, TimeBatchNorm)
        assert torch.equal(norm.weight, torch.full_like(norm.weight, 0.1))
    assert not cell.has_fused
    monkeypatch.setattr(cell, "forward_fused", lambda *a: pytest.fail("fused path used"))
    model(torch.randn(T, B, I))


def test_batchnorm_keeps_statistics_per_time_step() -> None:
    model = model_with(ElmanCell, BatchNormRemedy())
    (cell,) = model.layers()
    assert isinstance(cell, ElmanCell) and isinstance(cell.norm_input, TimeBatchNorm)
    x = torch.arange(T, dtype=torch.float32).view(T, 1, 1) + 0.1 * torch.randn(T, B, I)
    model(x)  # training mode: one update of the population statistics, momentum 0.1
    stats = cell.norm_input.running_mean
    assert stats.shape == (T, H)
    expected = 0.1 * (x @ cell.weight_ih.T).mean(dim=1)
    torch.testing.assert_close(stats, expected, **TOL)
    assert all(not torch.allclose(stats[t], stats[t + 1]) for t in range(T - 1))
    assert cell.norm_hidden.running_mean.shape == (T, H)


def test_batchnorm_train_and_eval_and_beyond_the_trained_length() -> None:
    norm = TimeBatchNorm(H, gamma=0.1, shift=False, momentum=1.0, eps=1e-5)
    xs = [t + (1.0 + t) * torch.randn(B, H) for t in range(3)]
    for t, x in enumerate(xs):  # training: the batch's own statistics
        out = norm(x, t)
        torch.testing.assert_close(out.mean(dim=0), torch.zeros(H), **TOL)
        torch.testing.assert_close(
            out.std(dim=0, unbiased=False), torch.full((H,), 0.1), rtol=1e-3, atol=1e-3
        )
    norm.eval()
    probe = torch.randn(2, H)
    for t in range(3):  # evaluation: the statistics of step t (momentum 1: exactly that batch's)
        mean, var = xs[t].mean(dim=0), xs[t].var(dim=0, unbiased=False)
        torch.testing.assert_close(norm(probe, t), 0.1 * (probe - mean) / (var + 1e-5).sqrt())
        torch.testing.assert_close(norm(probe[:1], t), norm(probe, t)[:1])  # no batch dependence
    torch.testing.assert_close(norm(probe, 7), norm(probe, 2))  # beyond: the last step's
    model = model_with(LSTMCell, BatchNormRemedy())
    model(torch.randn(T, B, I))
    model.eval()
    with torch.no_grad():
        out, _ = model(torch.randn(3 * T, B, I))
    assert torch.isfinite(out).all()


def test_batchnorm_statistics_survive_a_state_dict_round_trip() -> None:
    trained = model_with(LSTMCell, BatchNormRemedy())
    trained(torch.randn(T, B, I))
    fresh = model_with(LSTMCell, BatchNormRemedy())
    fresh.load_state_dict(trained.state_dict())
    trained.eval()
    fresh.eval()
    x = torch.randn(T, B, I)
    torch.testing.assert_close(fresh(x)[0], trained(x)[0])


def test_batchnorm_and_layernorm_conflict() -> None:
    assert isinstance(BatchNormRemedy.incompatibility("lstm", LSTMCell, ["layernorm"], 1), str)
    assert isinstance(LayerNormRemedy.incompatibility("lstm", LSTMCell, ["batchnorm"], 1), str)
    # that a config is refused for it: test_config.py::test_conflicting_remedies_blame_the_...


# --- layernorm -------------------------------------------------------------------------------


@pytest.mark.parametrize("terms", ["summed", "separate"])
@pytest.mark.parametrize("cls", [ElmanCell, LSTMCell, GRUCell])
def test_layernorm_is_per_example_and_the_same_in_eval(cls: type[Cell], terms: str) -> None:
    model = model_with(cls, LayerNormRemedy(LayerNormRemedy.Params(terms=terms)))  # type: ignore[arg-type]
    (cell,) = model.layers()
    summed: Any = getattr(cell, "norm_summed", None)
    assert (summed is not None) == (terms == "summed") and not cell.has_fused
    assert (summed is None) == bool(norms_of(cell)) or cls is LSTMCell  # LSTM: c_t in both
    x = torch.randn(T, B, I)
    together, _ = model(x)
    alone = torch.cat([model(x[:, i : i + 1])[0] for i in range(B)])
    torch.testing.assert_close(together, alone, **TOL)
    model.eval()
    torch.testing.assert_close(model(x)[0], together, **TOL)
    norm: Any = summed[0] if summed is not None else cell.norm_input  # type: ignore[attr-defined]
    normed = norm(torch.randn(B, norm.norm.normalized_shape[0]), 0)
    torch.testing.assert_close(normed.mean(dim=-1), torch.zeros(B), **TOL)


# --- residual --------------------------------------------------------------------------------


@pytest.mark.parametrize("step", [1.0, 0.1])
@pytest.mark.parametrize("cls", [ElmanCell, IndRNNCell])
def test_residual_through_time(cls: type[Cell], step: float) -> None:
    model = model_with(cls, Residual(Residual.Params(across_layers=False, step=step)))
    (cell,) = model.layers()
    assert isinstance(cell, ResidualCell) and cell.additive
    x = torch.randn(T, B, I)
    state, hs = zeros(cell), []
    for t, u_t in enumerate(cell.inner.project_inputs(x).unbind(0)):
        update, inner_state = cell.inner.step(u_t, state, t)
        h = state[0] + step * update  # h_t = h_{t-1} + step * F(x_t, h_{t-1})
        state = (h, *inner_state[1:])
        hs.append(h)
    torch.testing.assert_close(run_loop(cell, x, zeros(cell), None), torch.stack(hs), **TOL)
    assert Residual.Params().step == DEFAULT_STEP < 1


def test_residual_across_layers_is_an_after_layer_connection() -> None:
    model = model_with(ElmanCell, Residual(Residual.Params(through_time=False)), layers=2)
    assert not hasattr(model, "residual_layers")  # the seam replaced the model's flag
    lower, upper = model.layers()
    assert isinstance(lower, ElmanCell) and isinstance(upper, ElmanCell)
    x = torch.randn(T, B, I)
    h1 = run_loop(lower, x, zeros(lower), None)
    h2 = h1 + run_loop(upper, h1, zeros(upper), None)
    for probe in (False, True):  # the fused path and the probed loop alike
        torch.testing.assert_close(model(x, probe=probe)[0], model.head(h2[-1]), **TOL)
    both = model_with(ElmanCell, Residual(), layers=2)
    assert all(isinstance(c, ResidualCell) for c in both.layers())


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_residual_through_time_on_an_additive_cell_is_incompatible(cell: str) -> None:
    assert LSTMCell.additive and GRUCell.additive and GatedCell.additive
    assert not ElmanCell.additive and not IndRNNCell.additive
    with pytest.raises(IncompatibleError) as info:
        resolve_remedies(cell, ["residual"])
    message = str(info.value)
    assert f"remedy 'residual' is incompatible with cell '{cell}'" in message
    assert "declares additive" in message and "through_time: false" in message
    resolve_remedies(cell, [{"name": "residual", "through_time": False}])  # across layers only
    with pytest.raises(ValueError, match="already additive"):  # a model built by hand
        model_with(LSTMCell if cell == "lstm" else GRUCell, Residual())


def test_residual_through_time_with_gating_is_incompatible() -> None:
    with pytest.raises(IncompatibleError, match="cannot be combined with 'gating' through time"):
        resolve_remedies("rnn", ["residual", "gating"])
    resolve_remedies("rnn", [{"name": "residual", "through_time": False}, "gating"])


def resolve_remedies(cell: str, remedies: list[Any]) -> Any:
    data = {"dataset": {"name": "adding"}, "cell": {"name": cell}, "remedies": remedies}
    return resolve(Source(path=None, data=data), installed_registry())


# --- gating ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ElmanCell, LSTMCell])
def test_gating_wraps_any_cell_with_an_update_gate(cls: type[Cell]) -> None:
    model = model_with(cls, Gating(Gating.Params(bias=-1.0)))
    (cell,) = model.layers()
    assert isinstance(cell, GatedCell) and isinstance(cell.inner, cls)
    assert torch.equal(cell.gate_x.bias, torch.full((H,), -1.0))
    x = torch.randn(T, B, I)
    state: State = tuple(torch.randn(B, H) for _ in zeros(cell))
    loop = run_loop(cell, x, state, None)
    for t in range(T):
        h_prev = state[0]
        candidate, inner_state = cell.inner(x[t], state)
        z = torch.sigmoid(cell.gate_x(x[t]) + h_prev @ cell.gate_h.weight.T)
        h = (1 - z) * h_prev + z * candidate
        torch.testing.assert_close(loop[t], h, **TOL)
        gated, _ = cell(x[t], state)
        torch.testing.assert_close(gated, h, **TOL)
        state = (h, *inner_state[1:])


# --- order -----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [("residual", "relu"), ("relu", "residual")])
def test_remedies_act_in_stage_order(order: tuple[str, str]) -> None:
    made = {"residual": Residual(), "relu": IdentityReLU()}
    model = model_with(ElmanCell, *(made[name] for name in order))
    (cell,) = model.layers()
    assert isinstance(cell, ResidualCell) and isinstance(cell.inner, ElmanCell)
    assert torch.equal(cell.inner.weight_hh, torch.eye(H))  # re-initialised, then wrapped
    result, _ = short_run(
        installed_registry(),
        {"name": "adding", **TINY_ADDING},
        {"name": "rnn", "hidden_size": 8},
        [{"name": n} for n in order],
    )
    assert result.outcome == "completed"
