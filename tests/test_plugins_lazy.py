"""Lazy references: ``register(name, "module:Class")`` imports the class on first use only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnnlab.cli import cli
from rnnlab.errors import ConfigError, PluginError
from rnnlab.plugins import make_plugin_manager
from tests.conftest import CELL_LIST

LAZY_CELLS = """
import torch
import pydantic
from rnnlab.base import Cell


class Echo(Cell):
    def forward(self, x_t, state):
        h = torch.tanh(state[0] + x_t.sum(-1, keepdim=True))
        return h, (h,)


class Holder:
    class Inner(Echo):
        pass


class NotACell:
    pass


class Loose(Echo):
    class Params(pydantic.BaseModel):
        x: int = 1
"""


def lazy_plugin(*registrations: tuple[str, str]) -> str:
    calls = "".join(f"    register({name!r}, {ref!r})\n" for name, ref in registrations)
    return f"import rnnlab\n\n@rnnlab.hookimpl\ndef register_cells(register):\n{calls}"


def install(fake_dist, *registrations: tuple[str, str]) -> Path:
    modules = {
        "lazy_plugin": lazy_plugin(*registrations),
        "lazy_cells": LAZY_CELLS,
        "raising_cells": "raise RuntimeError('boom at import')",
    }
    return fake_dist("rnnlab-lazy", {"lazy": "lazy_plugin"}, modules, version="0.2")


def test_a_lazy_reference_resolves_to_its_class_on_first_use(fake_dist) -> None:
    install(fake_dist, ("echo", "lazy_cells:Echo"), ("inner", "lazy_cells:Holder.Inner"))
    registry = make_plugin_manager(load=None, strict=False).registry()
    assert {"echo", "inner", "lstm"} <= set(registry.names("cell"))
    assert "lazy_cells" not in sys.modules  # listing names imported nothing
    echo = registry.get("cell", "echo")
    assert echo is sys.modules["lazy_cells"].Echo
    assert registry.get("cell", "inner") is sys.modules["lazy_cells"].Holder.Inner
    assert registry.get("cell", "echo") is echo
    entry = registry.entries["cell"]["echo"]
    assert (entry.cls, entry.plugin.distribution, entry.plugin.version) == (
        echo,
        "rnnlab-lazy",
        "0.2",
    )


@pytest.mark.parametrize("args", [["plugins"], ["plugins", "--json"]], ids=["table", "json"])
def test_listing_plugins_imports_neither_torch_nor_the_references(fake_dist, args) -> None:
    site = install(fake_dist, ("echo", "lazy_cells:Echo"))
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('HEAVY', sorted(m for m in ('torch', 'pydantic', "
        "'lazy_cells', 'rnnlab.base', 'rnnlab_cells.twins') if m in sys.modules), "
        "file=sys.stderr))\n"
        "from rnnlab.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *args],
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stderr
    assert "echo" in done.stdout and "lstm" in done.stdout and "clip" in done.stdout


BAD_REFERENCES = [
    ("no_such_module:Ghost", "ModuleNotFoundError: No module named 'no_such_module'"),
    ("lazy_cells:Ghost", "AttributeError: module 'lazy_cells' has no attribute 'Ghost'"),
    (
        "lazy_cells:NotACell",
        "expected a subclass of rnnlab.Cell, got <class 'lazy_cells.NotACell'>",
    ),
    ("lazy_cells:Loose", "Loose.Params must reject unknown keys"),
    ("raising_cells:Echo", "RuntimeError: boom at import"),
]
BAD_IDS = ["missing-module", "missing-attribute", "not-a-cell", "loose-params", "module-raises"]


@pytest.mark.parametrize(("ref", "cause"), BAD_REFERENCES, ids=BAD_IDS)
def test_a_bad_reference_fails_at_get_naming_plugin_reference_and_cause(
    fake_dist, ref, cause
) -> None:
    install(fake_dist, ("ghost", ref), ("echo", "lazy_cells:Echo"))
    plugins = make_plugin_manager(load=None, strict=False)
    registry = plugins.registry()
    assert "ghost" in registry.names("cell") and plugins.errors() == []  # not imported yet
    for _ in range(2):  # the second try gives the same answer and records nothing more
        with pytest.raises(ConfigError) as failed:
            registry.get("cell", "ghost")
        message = str(failed.value)
        assert (
            f"cell 'ghost' of plugin 'lazy' (rnnlab-lazy 0.2) cannot be loaded from {ref!r}"
            in message
        )
        assert cause in message and "RNNLAB_LOAD_PLUGINS" in message
    [error] = plugins.errors()
    assert error.startswith(
        f"plugin 'lazy' (rnnlab-lazy 0.2): registered cell 'ghost' as {ref!r} badly"
    )
    assert cause in error
    assert "ghost" not in registry.names("cell")  # known to be broken: listed no more
    assert registry.get("cell", "echo") and registry.get("cell", "lstm")  # the rest works


@pytest.mark.parametrize(
    "ref", ["lazy_cells.Echo", "lazy_cells:", ":Echo", "lazy cells:Echo", "lazy_cells:Echo:More"]
)
def test_a_malformed_reference_is_rejected_when_registered(fake_dist, ref) -> None:
    install(fake_dist, ("ghost", ref), ("echo", "lazy_cells:Echo"))
    plugins = make_plugin_manager(load=None, strict=False)
    registry = plugins.registry()
    assert plugins.errors() == [
        f"plugin 'lazy' (rnnlab-lazy 0.2): registered cell 'ghost' badly: a lazy reference is "
        f"'package.module:ClassName', got {ref!r}"
    ]
    assert "ghost" not in registry.names("cell")
    assert registry.get("cell", "echo") and "lstm" in registry.names("cell")
    with pytest.raises(PluginError, match="a lazy reference is 'package.module:ClassName'"):
        make_plugin_manager(load=None, strict=True).registry()


def test_strict_mode_loads_every_reference_up_front(fake_dist, monkeypatch) -> None:
    install(fake_dist, ("ghost", "no_such_module:Ghost"), ("echo", "lazy_cells:Echo"))
    with pytest.raises(
        PluginError,
        match="plugin 'lazy' \\(rnnlab-lazy 0.2\\): registered cell 'ghost' as "
        "'no_such_module:Ghost' badly: ModuleNotFoundError",
    ):
        make_plugin_manager(load=None, strict=True).registry()
    monkeypatch.setenv("RNNLAB_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="'no_such_module:Ghost'"):
        make_plugin_manager(load=None).registry()


def test_plugins_command_lists_unchecked_and_strict_checks(fake_dist) -> None:
    install(fake_dist, ("ghost", "no_such_module:Ghost"), ("echo", "lazy_cells:Echo"))
    runner = CliRunner()
    rows = {
        r["distribution"]: r for r in json.loads(runner.invoke(cli, ["plugins", "--json"]).output)
    }
    assert rows["rnnlab-lazy"]["cells"] == ["echo", "ghost"] and rows["rnnlab-lazy"]["errors"] == []
    strict = runner.invoke(cli, ["--strict-plugins", "plugins"])
    assert strict.exit_code == 2
    assert "rnnlab-lazy 0.2 BROKEN" in strict.output and "cells: echo\n" in strict.output
    assert "lazy: registered cell 'ghost' as 'no_such_module:Ghost' badly" in strict.output
    assert f"cells: {CELL_LIST}" in strict.output  # the built-ins still listed


def test_run_with_a_broken_reference_exits_2_naming_the_plugin(
    fake_dist, tmp_path, monkeypatch
) -> None:
    from tests.conftest import TINY

    install(fake_dist, ("ghost", "no_such_module:Ghost"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text(TINY.replace("name: lstm", "name: ghost"))
    result = CliRunner().invoke(cli, ["run", "run.yaml", "--no-track"])
    assert result.exit_code == 2, result.output
    assert "run.yaml" in result.output
    assert "cell 'ghost' of plugin 'lazy' (rnnlab-lazy 0.2) cannot be loaded" in result.output
    assert not (tmp_path / "mlflow.db").exists()
