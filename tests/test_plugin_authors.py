"""What a third-party plugin author meets (issue 17): the contract suites beside someone else's
broken plugin and RNNLAB_LOAD_PLUGINS, and the messages a plugin's mistakes get."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from rnnlab_remedies.clip import GradientClipping
from rnnlab_tasks.adding import AddingProblem

from rnnlab.cli import cli
from rnnlab.errors import ConfigError, PluginError
from rnnlab.plugins import make_plugin_manager
from rnnlab.testing import DatasetContract, PluginSkipWarning, RemedyContract, _available

GHOST = """
import rnnlab


@rnnlab.hookimpl
def register_cells(register):
    register("ghost", "no_such_module:Ghost")
"""


@pytest.fixture
def fresh_suites() -> Iterator[None]:
    """The suites' registries built again for this test (they are cached per process)."""

    def clear() -> None:
        _available._installed.cache_clear()
        _available._everything.cache_clear()
        _available._told.clear()

    clear()
    yield
    clear()


@pytest.fixture
def ghost(fake_dist, fresh_suites) -> None:
    """Someone else's plugin is installed, and its cell's lazy reference cannot import."""
    fake_dist("rnnlab-ghost", {"ghost": "ghost_plugin"}, {"ghost_plugin": GHOST}, version="0.3")


class Clip(RemedyContract):
    remedy_cls = GradientClipping


class Adding(DatasetContract):
    dataset_cls = AddingProblem
    params = AddingProblem.Params(seq_len=10, val_size=32, test_size=32)


def test_someone_elses_broken_plugin_is_left_out_and_named(ghost) -> None:
    with pytest.warns(PluginSkipWarning, match=r"plugin 'ghost' \(rnnlab-ghost 0.3\).*'ghost'"):
        Clip().test_compatibility_follows_requires_and_conflicts()
    assert "ghost" not in _available.installed_registry().names("cell")


def test_the_suites_honour_rnnlab_load_plugins(ghost, monkeypatch) -> None:
    monkeypatch.setenv("RNNLAB_LOAD_PLUGINS", "rnnlab")  # the author's own list, not the ghost
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginSkipWarning)  # the ghost is never even loaded
        Clip().test_compatibility_follows_requires_and_conflicts()
    assert "ghost" not in _available.installed_registry().entries["cell"]


def test_a_class_alongside_that_is_not_loaded_skips_saying_why(fresh_suites, monkeypatch) -> None:
    monkeypatch.setenv("RNNLAB_LOAD_PLUGINS", "rnnlab_remedies")
    with pytest.raises(pytest.skip.Exception) as skipped:
        Clip().test_compatibility_follows_requires_and_conflicts()
    message = str(skipped.value)
    assert "cell_name = 'rnn': RNNLAB_LOAD_PLUGINS='rnnlab_remedies' leaves out plugin " in message
    assert "'rnnlab_cells' (rnnlab 0.1.0), which registers cell 'rnn'" in message
    with pytest.raises(pytest.skip.Exception, match="leaves out plugin 'rnnlab_cells'"):
        Adding().test_trains(Adding.params)


def test_a_class_alongside_that_cannot_load_skips_and_a_typo_fails(ghost) -> None:
    class OnGhost(Clip):
        cell_name = "ghost"

    with pytest.warns(PluginSkipWarning), pytest.raises(pytest.skip.Exception) as skipped:
        OnGhost().test_trains()
    assert "cell_name = 'ghost' is unavailable: cell 'ghost' of plugin 'ghost'" in str(
        skipped.value
    )
    assert "No module named 'no_such_module'" in str(skipped.value)

    class Typo(Clip):
        cell_name = "rnnn"

    with pytest.raises(pytest.fail.Exception, match="unknown cell 'rnnn'.*Did you mean 'rnn'"):
        Typo().test_trains()


def test_load_plugins_names_that_match_nothing_are_told_with_the_installed_ones(
    monkeypatch,
) -> None:
    monkeypatch.setenv("RNNLAB_LOAD_PLUGINS", "example")  # the entry point is rnnlab_example
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "No plugins loaded: RNNLAB_LOAD_PLUGINS names 'example', which matches no installed "
        "plugin; name entry points or distributions; installed entry points (distribution): "
    )
    assert "rnnlab_cells (rnnlab), rnnlab_remedies (rnnlab), rnnlab_tasks (rnnlab)" in result.stdout
    monkeypatch.setenv("RNNLAB_LOAD_PLUGINS", "example,rnnlab_cells, rnnlab-nope")
    result = CliRunner().invoke(cli, ["plugins"])
    assert "cells: " in result.stdout
    assert "Warning: RNNLAB_LOAD_PLUGINS names 'example', 'rnnlab-nope', which match no" in (
        result.stderr
    )
    with pytest.raises(PluginError, match="RNNLAB_LOAD_PLUGINS names 'example'"):
        make_plugin_manager(strict=True)
    assert make_plugin_manager(load=["rnnlab"]).unmatched == []
    assert make_plugin_manager(load=["RNNLAB", "rnnlab_tasks"]).unmatched == []


def test_a_suggestion_never_offers_a_plugin_that_cannot_load(ghost) -> None:
    registry = make_plugin_manager(load=None, strict=False).registry()
    assert "ghost" in registry.names("cell")  # listed until something tries to load it
    with pytest.raises(ConfigError) as error:
        registry.get("cell", "ghosts")
    assert "Did you mean" not in str(error.value) and "ghost," not in str(error.value)
    assert str(error.value).startswith("unknown cell 'ghosts'; installed cells: antisymmetric")
