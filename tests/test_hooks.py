"""One test per hook (datasette-style), and a meta-test that keeps it that way."""

from __future__ import annotations

import inspect
import sys

import click
import torch
from click.testing import CliRunner

import rnnlab
from rnnlab import hookspecs
from rnnlab.base import Cell, Dataset, Remedy, TaskKind
from rnnlab.cli import cli
from rnnlab.plugins import make_plugin_manager


class Plugin:
    """A plugin object implementing every hook, registered directly for these tests."""

    class Cell(Cell):
        def forward(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]):  # type: ignore[override]
            h = torch.tanh(state[0] + x_t.sum(-1, keepdim=True))
            return h, (h,)

    class Task(Dataset):
        kind = TaskKind.REGRESSION_LAST

    class Fix(Remedy):
        pass

    @rnnlab.hookimpl
    def register_cells(self, register):
        register("hook_cell", self.Cell)

    @rnnlab.hookimpl
    def register_datasets(self, register):
        register("hook_task", self.Task)

    @rnnlab.hookimpl
    def register_remedies(self, register):
        register("hook_fix", self.Fix)

    @rnnlab.hookimpl
    def register_commands(self, cli):
        @cli.command(name="hook-hello")
        def hello() -> None:
            click.echo("hello from a hook")


def _registry():
    plugins = make_plugin_manager(load=None, extra=[("hooks", Plugin())])
    return plugins, plugins.registry()


def test_hook_register_cells() -> None:
    plugins, registry = _registry()
    assert registry.get("cell", "hook_cell") is Plugin.Cell
    assert plugins.infos["hooks"].registered["cell"] == ["hook_cell"]


def test_hook_register_datasets() -> None:
    _, registry = _registry()
    assert registry.get("dataset", "hook_task") is Plugin.Task


def test_hook_register_remedies() -> None:
    _, registry = _registry()
    assert registry.get("remedy", "hook_fix") is Plugin.Fix


def test_hook_register_commands() -> None:
    from rnnlab.cli import plugin_commands

    plugins, _ = _registry()
    added = plugin_commands(plugins, cli)
    assert list(added) == ["hook-hello"]
    assert CliRunner().invoke(added["hook-hello"]).output == "hello from a hook\n"


def test_every_hook_has_a_test() -> None:
    hooks = [
        n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "rnnlab_spec")
    ]
    here = sys.modules[__name__]
    assert hooks and all(hasattr(here, f"test_hook_{name}") for name in hooks)


def test_the_pytest_plugin_fixtures(rnnlab_registry, rnnlab_mlflow, rnnlab_sweep) -> None:
    registry = rnnlab_registry("cell", "mine", Plugin.Cell)
    assert registry.get("cell", "mine") is Plugin.Cell
    assert rnnlab_mlflow.startswith("sqlite:///")
    result = rnnlab_sweep(
        "dataset: {name: adding, seq_len: 6, val_size: 16}\ncell: {name: rnn, hidden_size: 4}\n"
        "train: {steps: 2, batch_size: 4, eval_every: 2, probe_every: 2}\n"
        "sweep: {workers: 1, space: {cell.name: [rnn, gru]}}\n"
    )
    assert result.exit_code == 0, result.output
    assert "done: completed 2" in result.output
