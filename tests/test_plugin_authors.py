"""What a third-party plugin author meets (issue 17): the contract suites beside someone else's
broken plugin and RNNLAB_LOAD_PLUGINS, and the messages a plugin's mistakes get."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
import tomllib
import typing
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from click.testing import CliRunner
from pydantic import ValidationInfo, field_validator, model_validator
from rnnlab_cells.twins import ElmanCell
from rnnlab_remedies.clip import GradientClipping
from rnnlab_tasks.adding import AddingProblem

import rnnlab
from rnnlab.base import TaskShape
from rnnlab.cli import cli
from rnnlab.errors import ConfigError, IncompatibleError, PluginError
from rnnlab.plugins import make_plugin_manager
from rnnlab.run import Source, load_run_config, resolve
from rnnlab.testing import (
    CellContract,
    DatasetContract,
    PluginSkipWarning,
    RemedyContract,
    _available,
    registry_with,
)

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


# --- compatibility: what a reason is about, and what check sees (items 2 and 4) ---------------


class SquareOnly(rnnlab.Remedy):
    """Needs a square recurrent parameter, which only an instance can tell: ``check`` with the
    ``cell`` (its resolved options, and a throwaway instance)."""

    seen: ClassVar[list[tuple[str, rnnlab.Params, int]]] = []

    @classmethod
    def check(
        cls,
        params: rnnlab.Params,
        cell_name: str,
        cell_cls: type[rnnlab.Cell],
        remedies: Sequence[str],
        layers: int,
        task: rnnlab.TaskShape,
        cell: rnnlab.CellShape | None = None,
    ) -> str | None:
        assert cell is not None and cell.name == cell_name and cell.cls is cell_cls
        cls.seen.append((cell_name, cell.params, cell.hidden_size))
        weight = cell.build(input_size=1, hidden_size=4).recurrent_weight()
        if not isinstance(weight, torch.nn.Parameter) or weight.shape[0] != weight.shape[1]:
            return f"the recurrent weight of cell '{cell_name}' is not a square parameter"
        return super().check(params, cell_name, cell_cls, remedies, layers, task)


class Rescale(rnnlab.Remedy):
    """Clashes with clipping, and says so in a clause (the documented grammar)."""

    @classmethod
    def incompatibility(
        cls, cell_name: str, cell_cls: type[rnnlab.Cell], remedies: Sequence[str], layers: int
    ) -> str | None:
        if "clip" in remedies:
            return "both rescale the gradient, so the second undoes the first"
        return super().incompatibility(cell_name, cell_cls, remedies, layers)


def _resolve(cell: dict[str, Any], remedies: list[Any]) -> Any:
    registry = registry_with(
        "remedy", SquareOnly, name="square", also=[("remedy", "rescale", Rescale)]
    )
    data = {"dataset": {"name": "adding", "seq_len": 16}, "cell": cell, "remedies": remedies}
    return resolve(Source(path=None, data=data), registry)


def test_a_reason_about_the_cell_gets_the_cells_that_support_it_even_beside_others() -> None:
    for remedies in (["square"], ["clip", "square"]):
        with pytest.raises(IncompatibleError) as error:
            _resolve({"name": "lstm", "hidden_size": 8}, remedies)
        message = str(error.value)
        said = (
            "remedy 'square' is incompatible with cell 'lstm' on dataset 'adding': the "
            "recurrent weight of cell 'lstm' is not a square parameter"
        )
        assert message.startswith(f"<config>, key remedies.{remedies.index('square')}: {said}")
        assert error.value.problem == said  # what a sweep records, without file and hint
        fits = message.split(". Cells that support it with these options: ", 1)[1].split(", ")
        assert "rnn" in fits and not {"lstm", "gru", "simple", "indrnn"} & set(fits), fits
        assert "remove one of them" not in message


def test_a_reason_about_another_remedy_names_it_and_reads_as_a_clause() -> None:
    with pytest.raises(IncompatibleError) as error:
        _resolve({"name": "rnn"}, ["rescale", "clip"])
    assert str(error.value) == (
        "<config>, key remedies.0: remedy 'rescale' cannot be combined with 'clip': both rescale "
        "the gradient, so the second undoes the first; remove one of them from remedies"
    )
    assert error.value.problem == str(error.value).split(": ", 1)[1].split("; remove")[0]


def test_check_sees_the_resolved_cell_options_and_draws_nothing() -> None:
    SquareOnly.seen.clear()
    before = torch.random.get_rng_state()
    with pytest.raises(IncompatibleError, match="cell 'indrnn' is not a square parameter"):
        _resolve({"name": "indrnn", "hidden_size": 8, "recurrent_max": "auto"}, ["square"])
    assert torch.equal(torch.random.get_rng_state(), before), "check shifted the run's weights"
    name, params, hidden = SquareOnly.seen[0]
    assert (name, hidden) == ("indrnn", 8)
    assert params.recurrent_max == pytest.approx(2 ** (1 / 16))  # type: ignore[attr-defined]
    # the instance is the same in the coordinator and in the worker: seeded, whatever came before
    shape = rnnlab.CellShape("rnn", ElmanCell, ElmanCell.Params(), 8, TaskShape(AddingProblem()))
    torch.manual_seed(1)
    first = [p.detach().clone() for p in shape.build(input_size=1).parameters()]
    torch.manual_seed(2)
    again = list(shape.build(input_size=1).parameters())
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


# --- options that depend on each other; a sweep file given to `rnnlab run` (items 9, 10) -----


class Window(rnnlab.Remedy):
    """Two options checked together, both ways docs/plugins.md shows."""

    class Params(rnnlab.Params):
        low: int = 1
        high: int = 4
        width: int = 2

        @field_validator("high")
        @classmethod
        def _above_low(cls, high: int, info: ValidationInfo) -> int:
            low = info.data.get("low")  # the options declared before this one, validated
            if low is not None and high <= low:
                raise ValueError(f"must be above low ({low}); raise high or lower low")
            return high

        @model_validator(mode="after")
        def _fits(self) -> Window.Params:
            if self.width > self.high - self.low:
                raise ValueError("width must fit between low and high")
            return self


def test_a_check_across_options_points_at_the_key_and_its_line(write_config) -> None:
    registry = registry_with("remedy", Window, name="window")
    base = (
        "dataset: {name: adding, seq_len: 10}\n"
        "cell: {name: rnn, hidden_size: 8}\n"
        "remedies:\n"
        "  - name: window\n"
    )
    path = write_config(base + "    low: 5\n    high: 3\n")
    with pytest.raises(ConfigError) as error:
        load_run_config(path, registry)
    assert str(error.value) == (
        f"{path}, line 6, key remedies.0.high: must be above low (5); raise high or lower low "
        "(got 3)"
    )
    path = write_config(base + "    width: 9\n")
    with pytest.raises(ConfigError) as error:
        load_run_config(path, registry)
    said = "width must fit between low and high"  # no "Value error, ", no mapping
    assert str(error.value) == f"{path}, line 4, key remedies.0: {said}"


def test_the_docs_show_the_checks_across_options_as_tested() -> None:
    """docs/plugins.md's "Options checked together" quotes Window.Params and the two messages
    the test above gets, so the documented pattern cannot drift from what works."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    section = text.split("### Options checked together\n", 1)[1].split("\n### ", 1)[0]
    assert textwrap.dedent(inspect.getsource(Window.Params)).rstrip() in section
    assert (
        "`run.yaml, line 6, key remedies.0.high: must be above low (5); raise high or lower low "
        "(got 3)`" in " ".join(section.split())
    )
    assert "`run.yaml, line 4, key remedies.0: width must fit between low and high`" in section


def test_rnnlab_run_given_a_sweep_file_says_to_use_rnnlab_sweep(write_config) -> None:
    path = write_config(
        "dataset: {name: adding}\ncell: {name: rnn}\nsweep:\n  space: {train.lr: [0.1]}\n",
        name="grid.yaml",
    )
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 2
    assert f"Error: {path}, line 3, key sweep: this is a sweep file" in result.output
    assert f"run it with `rnnlab sweep {path}`" in result.output
    assert "Did you mean" not in result.output


def test_the_dry_run_tells_the_threads_a_trial_will_get(write_config, monkeypatch) -> None:
    monkeypatch.setattr("rnnlab.sweep._workers.cpu_cores", lambda: 4)
    sweep = (
        "dataset: {name: adding, seq_len: 10}\ncell: {name: rnn, hidden_size: 8}\n"
        "train: {steps: 4, device: cpu%s}\nsweep: {workers: 1, space: {train.lr: [0.1, 0.2]}}\n"
    )
    for threads, said in (("", "(4 torch thread(s) each)"), (", threads: 1", "(1 torch")):
        path = write_config(sweep % threads, name="threads.yaml")
        result = CliRunner().invoke(cli, ["sweep", str(path), "--dry-run"])
        assert result.exit_code == 0, result.output
        assert f"slots: cpu 0 {said}" in result.output, result.output
    assert "slots: cpu 0 (1 torch thread(s) (train.threads) each)" in result.output


# --- docs/plugins.md's tables of the suites cannot drift (item 6) ------------------------------

SUITES = {s.__name__: s for s in (CellContract, DatasetContract, RemedyContract)}


def _table(heading: str) -> dict[str, list[str]]:
    """The rows (first cell's name -> the other cells) of the docs table that starts with
    ``heading``."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    block = text.split(f"\n{heading}\n|---", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip("|").split(" | ") for line in block.splitlines()[1:]]
    return {row[0].strip(" `"): [cell.strip() for cell in row[1:]] for row in rows}


def _suites(cell: str) -> set[str]:
    return set(SUITES) if cell == "all three" else {s.strip(" `") for s in cell.split(",")}


def test_the_table_of_tuning_attributes_is_every_suite_attribute_it_uses() -> None:
    documented = _table("| attribute | suites | default | what it sets |")
    real: dict[str, set[str]] = {}
    defaults: dict[str, str] = {}
    for name, suite in SUITES.items():
        source = inspect.getsource(suite)
        for klass in suite.__mro__:
            if not klass.__module__.startswith("rnnlab.testing"):
                continue
            for attribute in inspect.get_annotations(klass):
                if f"self.{attribute}" in source:  # an attribute the suite reads
                    real.setdefault(attribute, set()).add(name)
                    value = getattr(suite, attribute, None)
                    shown = "required" if not hasattr(suite, attribute) else f"`{value!r}`"
                    defaults[attribute] = shown
    assert sorted(documented) == sorted(real), "docs/plugins.md's attribute table"
    for attribute, (suites, default, _) in documented.items():
        assert _suites(suites) == real[attribute], attribute
        assert default == defaults[attribute], attribute


def test_the_table_of_tests_is_every_test_of_the_suites() -> None:
    documented = _table("| test | suites | checks; a plugin fails it when |")
    real: dict[str, set[str]] = {}
    for name, suite in SUITES.items():
        for test in (n for n in dir(suite) if n.startswith("test_")):
            real.setdefault(test, set()).add(name)
    assert sorted(documented) == sorted(real), "docs/plugins.md's table of the suites' tests"
    for test, (suites, _) in documented.items():
        assert _suites(suites) == real[test], test


# --- pytest is the plugin's test extra, not rnnlab's dependency (item 5) ----------------------


def test_rnnlab_testing_without_pytest_says_how_to_get_it() -> None:
    """In a process where pytest cannot be imported (``sys.modules['pytest'] = None``),
    ``import rnnlab.testing`` names pytest and the test extra, not a bare ModuleNotFoundError
    from deep inside the suites."""
    code = (
        "import sys\n"
        "sys.modules['pytest'] = None\n"
        "import rnnlab\n"
        "try:\n"
        "    import rnnlab.testing\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc.name, '|', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "pytest | rnnlab.testing needs pytest, which rnnlab does not install: pip install pytest "
        "(or your plugin's test extra: pip install -e '.[test]')"
    )


def test_the_documented_example_has_a_test_extra_with_pytest() -> None:
    example = Path(__file__).parent / "example_plugin" / "pyproject.toml"
    extras = tomllib.loads(example.read_text())["project"]["optional-dependencies"]
    assert any(req.split(">")[0].split("=")[0].strip() == "pytest" for req in extras["test"])


# --- resolving a config from Python, as docs/plugins.md shows it (item 10) --------------------


def test_the_docs_resolve_a_config_from_python_as_shown(monkeypatch, capsys) -> None:
    """docs/plugins.md's "From Python" block runs from the repository's root and prints what
    its comments say (each ``# ...`` line at the margin is the output of the print above it)."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "plugins.md").read_text()
    section = text.split("### From Python: a config resolved against the registry\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("\n```", 1)[0]
    monkeypatch.chdir(root)
    exec(compile(code, "docs/plugins.md", "exec"), {})
    said = [line[2:] for line in code.splitlines() if line.startswith("# ")]
    assert said and capsys.readouterr().out.splitlines() == said


def test_the_register_annotation_takes_a_class_or_a_lazy_reference() -> None:
    """``register: rnnlab.Register`` in a hook must accept what the docs show it given: a class
    and a ``"module:Class"`` string (a plugin's type checker reads this annotation)."""
    arguments, returned = typing.get_args(rnnlab.Register)
    assert arguments == [str, type | str] and returned is None
