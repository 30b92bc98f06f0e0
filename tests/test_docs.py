"""The docs cannot drift from the code: hooks, config keys, plugin names, runnable examples."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from rnnlab import hookspecs
from rnnlab.run import CellConfig, ModelConfig, RunConfig, TrainConfig

DOCS = Path(__file__).resolve().parents[1] / "docs"
HOOKS = [
    (name, fn)
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, "rnnlab_spec")
]


def test_there_are_hooks() -> None:
    assert {name for name, _ in HOOKS} == {
        "register_cells",
        "register_datasets",
        "register_remedies",
        "register_commands",
    }


@pytest.mark.parametrize(("name", "fn"), HOOKS, ids=[name for name, _ in HOOKS])
def test_every_hook_is_documented_with_its_exact_signature(name: str, fn: object) -> None:
    params = ", ".join(inspect.signature(fn).parameters)  # type: ignore[arg-type]
    assert f"### `{name}({params})`" in (DOCS / "plugins.md").read_text()


@pytest.mark.parametrize("model", [RunConfig, TrainConfig, ModelConfig, CellConfig])
def test_every_config_key_is_documented(model: type) -> None:
    text = (DOCS / "config.md").read_text()
    missing = [key for key in model.model_fields if f"`{key}`" not in text]  # type: ignore[attr-defined]
    assert not missing


def test_every_builtin_plugin_and_option_is_documented(registry) -> None:
    text = (DOCS / "config.md").read_text()
    for kind in ("cell", "dataset", "remedy"):
        for name in registry.names(kind):
            assert f"`{name}`" in text, name
            params = registry.get(kind, name).Params
            for option in params.model_fields:
                assert f"`{option}`" in text, f"{kind} {name}: {option}"


def test_the_tutorial_example_in_the_docs_runs() -> None:
    text = (DOCS / "plugins.md").read_text()
    section = text.split("## The tutorial SimpleRNN", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    printed: list[str] = []
    exec(code.group(1), {"print": lambda *a: printed.append(" ".join(map(str, a)))})
    assert printed[0] == "torch.Size([1, 2]) torch.Size([1, 20])"
    assert abs(float(printed[1].removeprefix("tensor(").split(",")[0].rstrip(")")) - 1) < 1e-5


def test_every_sweep_key_is_documented() -> None:
    from rnnlab.sweep import Objective, Range, SweepSection

    # a key counts as documented where it is a whole word in code (`seeds`, `{low, high}`), not
    # where it is a substring of the page: `seed` is not documented by `seeds`
    text = (DOCS / "sweeps.md").read_text()
    words = {word for span in re.findall(r"`([^`\n]+)`", text) for word in re.findall(r"\w+", span)}
    for model in (SweepSection, Objective, Range):
        missing = [key for key in model.model_fields if key not in words]
        assert not missing, (model.__name__, missing)


def test_the_plugin_tutorial_shows_the_example_plugin_verbatim() -> None:
    """docs/plugins.md quotes tests/example_plugin/, which CI installs and runs: it cannot drift."""
    example = Path(__file__).parent / "example_plugin"
    text = (DOCS / "plugins.md").read_text()
    shown = dict(re.findall(r"^`([\w./]+)`:\n\n```\w+\n(.*?)\n```", text, re.M | re.S))
    files = ["pyproject.toml"] + [
        str(p.relative_to(example)) for p in sorted((example / "rnnlab_example").glob("*.py"))
    ]
    assert len(files) == 5
    for name in files:
        assert shown.get(name) == (example / name).read_text().rstrip(), name
