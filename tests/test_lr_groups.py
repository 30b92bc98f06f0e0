"""Per-parameter-group learning rates: ``Cell.lr_groups()`` and ``train.lr_groups``."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import rnnlab
from rnnlab.cli import cli
from rnnlab.errors import ConfigError, SetupError
from rnnlab.plugins import make_plugin_manager
from rnnlab.run import build, load_run_config, make_optimizer
from rnnlab.testing import plugin_registering

EXPRNN = """\
name: groups
dataset: {name: adding, seq_len: 8, val_size: 32}
cell: {name: exprnn, hidden_size: 6}
model: {layers: 2}
train: {steps: 2, batch_size: 8, lr: 0.01, eval_every: 2, probe_every: 0, device: cpu}
"""


def _optimizer(write_config, registry, text: str, *overrides: str) -> tuple[Any, Any]:
    run = load_run_config(write_config(text), registry, list(overrides))
    _, _, model = build(run, torch.device("cpu"))
    return model, make_optimizer(model, run)


def _by_name(optimizer: torch.optim.Optimizer) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in optimizer.param_groups}


def _every_parameter_once(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    grouped = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert len(grouped) == len(set(grouped)), "a parameter is in two groups"
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())


def test_exprnn_trains_its_orthogonal_parameters_at_a_tenth(write_config, registry) -> None:
    model, optimizer = _optimizer(write_config, registry, EXPRNN, "train.optimizer=rmsprop")
    groups = _by_name(optimizer)
    assert list(groups) == ["default", "orthogonal"]
    assert groups["default"]["lr"] == 0.01
    assert groups["orthogonal"]["lr"] == pytest.approx(0.001)  # the paper's 7e-4 / 7e-5
    skews = {id(cell.skew) for cell in model.layers()}  # both layers' A, one group
    assert {id(p) for p in groups["orthogonal"]["params"]} == skews and len(skews) == 2
    _every_parameter_once(model, optimizer)


def test_train_lr_groups_sets_a_factor_or_a_rate(write_config, registry) -> None:
    _, optimizer = _optimizer(write_config, registry, EXPRNN, "train.lr_groups.orthogonal=0.5")
    assert _by_name(optimizer)["orthogonal"]["lr"] == pytest.approx(0.005)
    text = EXPRNN.replace(
        "lr: 0.01,", "lr: 0.01, lr_groups: {orthogonal: {lr: 2.0e-5}, readout: 3},"
    )
    model, optimizer = _optimizer(write_config, registry, text, "train.optimizer=sgd")
    groups = _by_name(optimizer)
    assert groups["orthogonal"]["lr"] == 2e-5
    assert groups["readout"]["lr"] == pytest.approx(0.03)
    assert groups["readout"]["params"] == list(model.head.parameters())
    _every_parameter_once(model, optimizer)


def test_a_cell_without_groups_has_one_group_unless_readout_is_set(write_config, registry) -> None:
    text = EXPRNN.replace("exprnn", "lstm")
    model, optimizer = _optimizer(write_config, registry, text)
    assert [g["name"] for g in optimizer.param_groups] == ["default"]
    model, optimizer = _optimizer(write_config, registry, text, "train.lr_groups.readout=0.1")
    assert _by_name(optimizer)["readout"]["lr"] == pytest.approx(0.001)
    _every_parameter_once(model, optimizer)


def test_the_rates_reach_the_updates(write_config, registry) -> None:
    """Adam's first step moves every parameter by about its group's lr: A by 1e-6, W by 0.01."""
    text = EXPRNN.replace("lr: 0.01,", "lr: 0.01, lr_groups: {orthogonal: 1.0e-4},")
    model, optimizer = _optimizer(write_config, registry, text)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    out, _ = model(torch.randn(8, 4, 2))
    out.square().mean().backward()
    optimizer.step()
    moved = {n: float((p.detach() - before[n]).abs().max()) for n, p in model.named_parameters()}
    skew = "cells.0.recurrent.parametrizations.weight.original"
    assert 0 < moved[skew] <= 1.2e-6, moved  # float32 rounding at |A| ~ 1 is ~6e-8
    assert 0.5e-2 < moved["cells.0.input.weight"] <= 1.01e-2, moved


def test_a_bad_group_name_is_a_clear_config_error(write_config, registry) -> None:
    path = write_config(EXPRNN.replace("lr: 0.01,", "lr: 0.01, lr_groups: {orthogonl: 0.1},"))
    with pytest.raises(ConfigError) as caught:
        load_run_config(path, registry)
    message = str(caught.value)
    assert "key train.lr_groups.orthogonl" in message and "line 5" in message
    assert "'orthogonal', 'readout'" in message and "Did you mean 'orthogonal'?" in message
    with pytest.raises(ConfigError, match="its groups are 'readout'"):
        load_run_config(
            write_config(EXPRNN.replace("exprnn", "lstm"), "lstm.yaml"),
            registry,
            ["train.lr_groups.orthogonal=0.1"],
        )
    with pytest.raises(ConfigError, match=r"train.lr_groups.orthogonal.*greater than 0"):
        load_run_config(path, registry, ["train.lr_groups={orthogonal: -1}"])
    result = CliRunner().invoke(cli, ["run", str(path), "--no-track"])
    assert result.exit_code != 0 and "train.lr_groups.orthogonl" in result.output
    assert "Traceback" not in result.output


class _Twice(rnnlab.Cell):
    """A cell that (wrongly) puts its one weight in two groups."""

    lr_group_names: ClassVar[tuple[str, ...]] = ("a", "b")

    def __init__(self, input_size: int, hidden_size: int, params: Any = None) -> None:
        super().__init__(input_size, hidden_size, params)
        self.weight = nn.Parameter(torch.zeros(hidden_size, input_size))

    def forward(self, x_t: torch.Tensor, state: rnnlab.State) -> tuple[torch.Tensor, rnnlab.State]:
        h = torch.tanh(x_t @ self.weight.T + state[0])
        return h, (h,)

    def lr_groups(self) -> dict[str, tuple[float, list[nn.Parameter]]]:
        return {"a": (1.0, [self.weight]), "b": (0.5, [self.weight])}


def test_a_parameter_in_two_groups_is_refused(write_config) -> None:
    extra = [("twice", plugin_registering("cell", "twice", _Twice))]
    registry = make_plugin_manager(load=["rnnlab_tasks"], extra=extra).registry()
    run = load_run_config(write_config(EXPRNN.replace("exprnn", "twice")), registry)
    _, _, model = build(run, torch.device("cpu"))
    with pytest.raises(
        SetupError, match=r"one parameter in two learning-rate groups \('a' and 'b'\)"
    ):
        make_optimizer(model, run)
