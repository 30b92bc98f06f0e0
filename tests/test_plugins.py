"""The plugin core: entry-point discovery, isolation of broken plugins, names, env switches."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import rnnlab
from rnnlab.cli import cli
from rnnlab.errors import ConfigError, PluginError
from rnnlab.plugins import make_plugin_manager
from tests.conftest import BUILTIN_CELLS, CELL_LIST

GOOD_CELL = """
import rnnlab

@rnnlab.hookimpl
def register_cells(register):
    from rnnlab.base import Cell
    import torch

    class Echo(Cell):
        def forward(self, x_t, state):
            h = torch.tanh(state[0] + x_t.sum(-1, keepdim=True))
            return h, (h,)

    register("echo", Echo)
"""


def test_builtins_come_through_the_entry_point_group(registry: rnnlab.Registry) -> None:
    assert registry.names("cell") == BUILTIN_CELLS
    assert set(registry.names("dataset")) >= {"adding", "copy", "digits", "mnist"}
    assert registry.names("remedy") == [
        "batchnorm",
        "clip",
        "flossing",
        "gating",
        "layernorm",
        "orthogonal",
        "relu",
        "residual",
    ]
    entry = registry.entries["cell"]["lstm"]
    assert entry.plugin.name == "rnnlab_cells"
    assert entry.plugin.distribution == "rnnlab"
    assert entry.plugin.version == rnnlab.__version__


def test_load_plugins_env_restricts_and_empty_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNLAB_LOAD_PLUGINS", "")
    assert make_plugin_manager().registry().names("cell") == []
    monkeypatch.setenv("RNNLAB_LOAD_PLUGINS", "rnnlab_cells")
    registry = make_plugin_manager().registry()
    assert "lstm" in registry.names("cell")
    assert registry.names("remedy") == []
    monkeypatch.setenv("RNNLAB_LOAD_PLUGINS", "rnnlab")  # a distribution name loads all of it
    assert "clip" in make_plugin_manager().registry().names("remedy")


def test_plugin_that_fails_to_import_is_reported_and_the_rest_works(fake_dist) -> None:
    fake_dist(
        "brokendist",
        {"broken": "broken_mod"},
        {"broken_mod": "raise ImportError('no x')"},
        version="2.5",
    )
    plugins = make_plugin_manager(load=None, strict=False)
    errors = plugins.errors()
    assert len(errors) == 1
    assert "plugin 'broken' (brokendist 2.5)" in errors[0]
    assert "broken_mod" in errors[0] and "ImportError: no x" in errors[0]
    assert "lstm" in plugins.registry().names("cell")


def test_strict_mode_turns_plugin_errors_into_an_error(fake_dist, monkeypatch) -> None:
    fake_dist("brokendist", {"broken": "broken_mod"}, {"broken_mod": "raise ImportError('no x')"})
    with pytest.raises(PluginError, match="plugin 'broken' \\(brokendist 1.0\\)"):
        make_plugin_manager(load=None, strict=True)
    monkeypatch.setenv("RNNLAB_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError):
        make_plugin_manager(load=None)


def test_a_third_party_plugin_is_discovered_like_a_builtin(fake_dist) -> None:
    fake_dist("rnnlab-echo", {"echo": "echo_plugin"}, {"echo_plugin": GOOD_CELL}, version="0.3")
    registry = make_plugin_manager(load=None).registry()
    entry = registry.entries["cell"]["echo"]
    assert (entry.plugin.distribution, entry.plugin.version) == ("rnnlab-echo", "0.3")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "def register_cells(register):\n    raise RuntimeError('boom')",
            "register_cells raised RuntimeError: boom",
        ),
        (
            "def register_cells(register):\n    register('thing', 42)",
            "expected a subclass of rnnlab.Cell, got 42",
        ),
        ("def register_cells(register):\n    register('Bad Name', object)", "lowercase"),
        (
            "def register_cells(register):\n"
            "    from rnnlab.base import Cell\n"
            "    import pydantic\n"
            "    class Loose(Cell):\n"
            "        class Params(pydantic.BaseModel):\n"
            "            x: int = 1\n"
            "    register('loose', Loose)",
            "Loose.Params must reject unknown keys",
        ),
        ("def register_cell(register):\n    pass", "invalid hook implementation"),
        ("def register_cells(register, extra):\n    pass", "invalid hook implementation"),
    ],
    ids=["raises", "non-class", "bad-name", "loose-params", "misspelled-hook", "extra-argument"],
)
def test_plugin_that_registers_badly_is_reported_by_name(fake_dist, body, expected) -> None:
    fake_dist(
        "baddist", {"bad": "bad_mod"}, {"bad_mod": f"import rnnlab\n\n@rnnlab.hookimpl\n{body}\n"}
    )
    plugins = make_plugin_manager(load=None, strict=False)
    registry = plugins.registry()
    errors = [e for e in plugins.errors() if "plugin 'bad' (baddist 1.0)" in e]
    assert errors and expected in errors[0], plugins.errors()
    assert "lstm" in registry.names("cell")  # the tool keeps working


def test_two_plugins_registering_one_name_is_an_error_naming_both(fake_dist) -> None:
    clash = GOOD_CELL.replace('register("echo", Echo)', 'register("lstm", Echo)')
    fake_dist("rnnlab-clash", {"clash": "clash_plugin"}, {"clash_plugin": clash})
    plugins = make_plugin_manager(load=None, strict=False)
    registry = plugins.registry()
    errors = "\n".join(plugins.errors())
    assert (
        "plugin 'rnnlab_cells' (rnnlab" in errors and "plugin 'clash' (rnnlab-clash 1.0)" in errors
    )
    with pytest.raises(ConfigError, match="registered by both .*rnnlab_cells.* and .*clash"):
        registry.get("cell", "lstm")
    assert registry.get("cell", "gru")  # other names are unaffected
    with pytest.raises(PluginError, match="registered by both"):
        make_plugin_manager(load=None, strict=True).registry()


def test_unknown_name_suggests_the_closest(registry) -> None:
    with pytest.raises(
        ConfigError,
        match=f"unknown cell 'lstmm'; installed cells: {CELL_LIST}. Did you mean 'lstm'",
    ):
        registry.get("cell", "lstmm")


def test_trace_logs_loads_hook_calls_registrations_and_imports(capsys) -> None:
    make_plugin_manager(load=["rnnlab_remedies"], trace=True).registry().get("remedy", "clip")
    err = capsys.readouterr().err
    assert "rnnlab trace: loaded plugin 'rnnlab_remedies'" in err
    assert "register_remedies(register) -> plugin 'rnnlab_remedies'" in err
    assert "register('clip', 'rnnlab_remedies.clip:GradientClipping') as a remedy" in err
    assert "import remedy 'clip' from 'rnnlab_remedies.clip:GradientClipping'" in err


def test_managers_are_independent(fake_dist) -> None:
    first = make_plugin_manager(load=None)
    fake_dist("rnnlab-echo", {"echo": "echo_plugin"}, {"echo_plugin": GOOD_CELL})
    second = make_plugin_manager(load=None)
    assert "echo" not in first.registry().names("cell")
    assert "echo" in second.registry().names("cell")


def test_register_commands_adds_a_cli_command(fake_dist) -> None:
    source = """
import click
import rnnlab

@rnnlab.hookimpl
def register_commands(cli):
    @cli.command()
    def hello():
        "Say hello."
        click.echo("hello from a plugin")
"""
    fake_dist("rnnlab-hello", {"hello": "hello_plugin"}, {"hello_plugin": source})
    runner = CliRunner()
    assert "hello" in runner.invoke(cli, ["--help"]).output
    result = runner.invoke(cli, ["hello"])
    assert result.exit_code == 0, result.output
    assert "hello from a plugin" in result.output


def test_plugins_command_lists_distributions_names_and_errors(fake_dist) -> None:
    fake_dist("brokendist", {"broken": "broken_mod"}, {"broken_mod": "raise ImportError('no x')"})
    runner = CliRunner()
    result = runner.invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["distribution"]: row for row in json.loads(result.output)}
    assert rows["rnnlab"]["version"] == rnnlab.__version__
    assert rows["rnnlab"]["cells"] == BUILTIN_CELLS
    assert "clip" in rows["rnnlab"]["remedies"] and "adding" in rows["rnnlab"]["datasets"]
    assert rows["brokendist"]["errors"] and "ImportError: no x" in rows["brokendist"]["errors"][0]
    text = runner.invoke(cli, ["plugins"]).output
    assert "brokendist 1.0 BROKEN" in text and f"cells: {CELL_LIST}" in text
    strict = runner.invoke(cli, ["--strict-plugins", "plugins"])
    assert strict.exit_code == 2 and "brokendist" in strict.output


def test_a_plugin_command_cannot_replace_a_builtin(fake_dist) -> None:
    source = """
import click
import rnnlab

@rnnlab.hookimpl
def register_commands(cli):
    @cli.command()
    def run():
        click.echo("hijacked")
"""
    fake_dist("rnnlab-hijack", {"hijack": "hijack_plugin"}, {"hijack_plugin": source})
    runner = CliRunner()
    listing = runner.invoke(cli, ["plugins"]).output
    assert "command 'run' already exists; choose another name" in listing
    result = runner.invoke(cli, ["run", "--help"])
    assert "Train one configuration" in result.output and "hijacked" not in result.output


def test_a_clashing_name_is_listed_by_neither_plugin(fake_dist) -> None:
    clash = GOOD_CELL.replace('register("echo", Echo)', 'register("gru", Echo)')
    fake_dist("rnnlab-clash", {"clash": "clash_plugin"}, {"clash_plugin": clash})
    rows = json.loads(CliRunner().invoke(cli, ["plugins", "--json"]).output)
    rnnlab_row = next(r for r in rows if r["distribution"] == "rnnlab")
    assert "gru" not in rnnlab_row["cells"] and "lstm" in rnnlab_row["cells"]


def test_strict_plugins_lists_then_fails_for_registration_errors_too(fake_dist) -> None:
    bad = "import rnnlab\n\n@rnnlab.hookimpl\ndef register_cells(register):\n    register('x', 1)\n"
    fake_dist("baddist", {"bad": "bad_mod"}, {"bad_mod": bad})
    result = CliRunner().invoke(cli, ["--strict-plugins", "plugins"])
    assert result.exit_code == 2
    assert f"cells: {CELL_LIST}" in result.output  # the listing came first
    assert "Error: plugin errors (strict mode" in result.output


def test_load_plugins_matches_distribution_names_canonically(fake_dist, monkeypatch) -> None:
    fake_dist("rnnlab-echo", {"echo": "echo_plugin"}, {"echo_plugin": GOOD_CELL})
    monkeypatch.setenv("RNNLAB_LOAD_PLUGINS", "RNNLAB_Echo")
    assert make_plugin_manager().registry().names("cell") == ["echo"]


def test_run_warns_about_registration_errors(fake_dist, tmp_path, monkeypatch) -> None:
    from tests.conftest import TINY

    bad = "import rnnlab\n\n@rnnlab.hookimpl\ndef register_cells(register):\n    register('x', 1)\n"
    fake_dist("baddist", {"bad": "bad_mod"}, {"bad_mod": bad})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text(TINY)
    result = CliRunner().invoke(cli, ["run", "run.yaml", "--no-track", "--set", "train.steps=1"])
    assert result.exit_code == 0, result.output
    assert "Warning: plugin 'bad' (baddist 1.0): registered cell 'x' badly" in result.output
