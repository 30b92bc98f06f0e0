"""The layers of docs/architecture.md, kept by parsing imports (nothing is executed).

    commands -> report -> sweep -> run -> (base, plugins, hookspecs, errors, _names)

A module may import a module of a lower layer, or of its own package; never one above it, never
another package's private ``_x`` module (only ``rnnlab._names``, the vocabulary, is everyone's),
and no import cycle among rnnlab's modules, counting those under ``TYPE_CHECKING`` and inside
functions. Only ``rnnlab.sweep`` imports optuna at run time. The built-in plugins (and the example
third-party plugin) import nothing of rnnlab but ``rnnlab`` and ``rnnlab.testing``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rnnlab"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PLUGINS = [
    *sorted((ROOT / "plugins").glob("rnnlab_*")),
    ROOT / "tests" / "example_plugin" / "rnnlab_example",
]

RANKS = {
    "rnnlab._names": 0,
    "rnnlab.errors": 0,
    "rnnlab.hookspecs": 0,
    "rnnlab.base": 1,
    "rnnlab.plugins": 2,
    "rnnlab.run": 3,
    "rnnlab": 3.5,  # the public facade: re-exports base, run, plugins, errors, hookspecs
    "rnnlab.testing": 4,
    "rnnlab.sweep": 4,
    "rnnlab.report": 5,
    "rnnlab.commands": 6,
    "rnnlab.cli": 7,
    "rnnlab.__main__": 8,
    "rnnlab.pytest_plugin": 8,
}
"""Each module or package of rnnlab and its layer: a module imports only lower layers."""

PENDING: dict[str, str] = {}
"""Modules written while issue 16 moved the code, not placed in a layer yet: not checked, and
plugins may import them until they are re-exported from rnnlab."""


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module (or, for ``from m import name``, m; m.name if a module)
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``
    names: tuple[str, ...] = ()  # ``from m import a, b``


def module_name(path: Path, top: Path) -> str:
    parts = list(path.relative_to(top.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def rnnlab_modules() -> dict[str, Path]:
    found = {module_name(p, PACKAGE): p for p in PACKAGE.rglob("*.py")}
    return {name: path for name, path in found.items() if name not in PENDING}


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, name: str, modules: set[str]) -> Iterator[Import]:
    """Every import in ``path`` (module ``name``), wherever it stands."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking(node.test):
            type_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(tree):
        typed = id(node) in type_only
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno, typed)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package this module is in
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if node.module else package
            names = tuple(a.name for a in node.names)
            submodules = [f"{base}.{n}" for n in names if f"{base}.{n}" in modules]
            for sub in submodules:
                yield Import(name, sub, node.lineno, typed, (sub.rpartition(".")[2],))
            rest = tuple(n for n in names if f"{base}.{n}" not in modules)
            if rest or not submodules:
                yield Import(name, base, node.lineno, typed, rest)


def layer_of(module: str) -> str | None:
    """The key of RANKS that holds ``module`` (its package or itself), or None (not rnnlab)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in RANKS:
            return key
    return None


def private_of_another_package(imp: Import) -> bool:
    """Whether ``imp`` reaches into a private ``_x`` module of a package it is not part of."""
    parts = imp.target.split(".")
    for depth, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(parts[:depth])
            if imp.target == "rnnlab._names":
                return False  # the vocabulary: every layer's
            return not (imp.source == owner or imp.source.startswith(owner + "."))
    return False


def layer_violations(found: list[Import]) -> list[str]:
    problems = []
    for imp in found:
        source, target = layer_of(imp.source), layer_of(imp.target)
        at = f"{imp.source} (line {imp.line}) imports {imp.target}"
        if target in PENDING or imp.target in PENDING:
            continue
        if source is None:
            problems.append(f"{imp.source} is in no layer: add it to RANKS or move it")
            continue
        if imp.target.split(".")[0] == "optuna" and source != "rnnlab.sweep" and not imp.type_only:
            problems.append(f"{at}: only rnnlab.sweep imports optuna")
        if target is None or target == source:
            continue
        if RANKS[target] >= RANKS[source]:
            problems.append(f"{at}: {target} is not below {source}")
        if private_of_another_package(imp):
            problems.append(f"{at}: a private module of another package; import its package")
    return problems


def cycles(found: list[Import], modules: set[str]) -> list[list[str]]:
    """The import cycles among ``modules`` (every strongly connected component of two or more)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in found:
        if imp.target in modules and imp.target != imp.source:
            graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def public_names() -> set[str]:
    """``rnnlab.__all__``, read from rnnlab/__init__.py."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    raise AssertionError("rnnlab/__init__.py has no literal __all__")


def plugin_violations(folder: Path, allowed: set[str], modules: set[str]) -> list[str]:
    problems = []
    for path in sorted(folder.rglob("*.py")):
        name = module_name(path, folder)
        for imp in imports(path, name, modules):
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            at = f"{shown} (line {imp.line}) imports {imp.target}"
            if imp.target.split(".")[0] != "rnnlab" or imp.target in PENDING:
                continue
            if imp.target == "rnnlab":
                bad = [n for n in imp.names if n not in allowed]
                if bad:
                    problems.append(f"{at} {', '.join(bad)}: not in rnnlab.__all__")
            elif imp.target != "rnnlab.testing":
                problems.append(f"{at}: a plugin imports only rnnlab and rnnlab.testing")
    return problems


def collect() -> tuple[list[Import], set[str]]:
    modules = rnnlab_modules()
    names = set(modules) | set(PENDING)
    found = [imp for m, p in modules.items() for imp in imports(p, m, names)]
    return found, set(modules)


def test_every_module_of_rnnlab_is_in_a_layer() -> None:
    modules = rnnlab_modules()
    assert not [m for m in modules if layer_of(m) is None], "add them to RANKS"
    top = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    shown = {"__init__", "__main__", "_names", "cli", "base", "hookspecs", "plugins", "errors"}
    shown |= {"pytest_plugin", "testing", "run", "sweep", "report", "commands"}
    pending = {m.rpartition(".")[2] for m in PENDING}
    assert top - pending == shown, "rnnlab/ holds only its public entry points and packages"


def test_imports_point_down_the_layers() -> None:
    found, _ = collect()
    assert layer_violations(found) == []


def test_no_import_cycle_among_rnnlab_modules() -> None:
    found, modules = collect()
    assert cycles(found, modules) == []


@pytest.mark.parametrize("folder", PLUGINS, ids=lambda p: p.name)
def test_plugins_import_only_rnnlab_and_rnnlab_testing(folder: Path) -> None:
    modules = set(rnnlab_modules()) | set(PENDING)
    assert plugin_violations(folder, public_names(), modules) == []


def test_the_lazy_packages_list_each_name_once() -> None:
    """rnnlab, rnnlab.run and rnnlab.sweep import their names on first use: the table of where
    each name lives, ``__all__`` and the ``TYPE_CHECKING`` imports list the same names."""
    import rnnlab
    import rnnlab.run
    import rnnlab.sweep

    assert set(rnnlab.__all__) - {"__version__", "hookimpl"} == set(rnnlab._LAZY)
    for package in (rnnlab.run, rnnlab.sweep):
        typed: set[str] = set()
        for node in ast.walk(ast.parse(Path(str(package.__file__)).read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                package.__name__ + "._"
            ):
                typed.update(a.name for a in node.names)
        assert sorted(package.__all__) == sorted(package._WHERE), package.__name__
        assert typed == set(package.__all__), package.__name__
    for package in (rnnlab, rnnlab.run, rnnlab.sweep):
        for name in package.__all__:
            getattr(package, name)  # each one is where the table says


def test_the_rules_catch_what_they_are_for() -> None:
    """An upward import into a private module, a cycle and optuna outside rnnlab.sweep (the
    tests above fail on each planted in a real module: tests/mutants/m20_upward_import.py)."""
    planted = Import("rnnlab.run._train", "rnnlab.sweep._study", 1, False)
    problems = layer_violations([planted])
    assert problems and "not below" in problems[0] and "private module" in problems[1]
    assert cycles(
        [planted, Import("rnnlab.sweep._study", "rnnlab.run._train", 1, True)],
        {
            "rnnlab.run._train",
            "rnnlab.sweep._study",
        },
    ) == [["rnnlab.run._train", "rnnlab.sweep._study"]]
    assert layer_violations([Import("rnnlab.run._config", "optuna", 1, False)])
    assert not layer_violations([Import("rnnlab.run._config", "optuna", 1, True)])  # type only
    for upward in ("rnnlab.report", "rnnlab.commands"):
        assert (
            "is not below" in layer_violations([Import("rnnlab.sweep._study", upward, 1, True)])[0]
        )
    downward_private = Import("rnnlab.sweep._study", "rnnlab.run._train", 1, False)
    assert [p for p in layer_violations([downward_private]) if "private module" in p]
    own = Import("rnnlab.sweep._study", "rnnlab.sweep._plan", 1, False)
    vocabulary = Import("rnnlab.sweep._study", "rnnlab._names", 1, False)
    assert layer_violations([own, vocabulary]) == []


def test_the_plugin_rule_catches_what_it_is_for(tmp_path: Path) -> None:
    """A plugin that imports a module of rnnlab other than rnnlab and rnnlab.testing, or a name
    of rnnlab outside ``rnnlab.__all__``, is named with its file and line."""
    folder = tmp_path / "rnnlab_planted"
    folder.mkdir()
    (folder / "__init__.py").write_text(
        "import rnnlab\n"
        "from rnnlab import Cell, hookimpl\n"
        "from rnnlab.testing import CellContract\n"
        "from rnnlab.run import train\n"
        "import rnnlab.base\n"
        "from rnnlab import _LAZY\n"
    )
    modules = set(rnnlab_modules()) | set(PENDING)
    problems = plugin_violations(folder, public_names(), modules)
    assert [p.split(" imports ")[0].rsplit("(", 1)[1] for p in problems] == [
        "line 4)",
        "line 5)",
        "line 6)",
    ]
    assert (
        "only rnnlab and rnnlab.testing" in problems[0] and "not in rnnlab.__all__" in problems[2]
    )


def module_map() -> set[str]:
    """What docs/architecture.md's module map names under ``rnnlab/``: its entries (``cli.py``,
    ``run/``) and their members (``run/_train.py``), read from the tree's indentation."""
    block = ARCHITECTURE.read_text().split("\n    rnnlab/\n", 1)[1].split("\n    plugins/", 1)[0]
    named, package = set(), ""
    for line in block.splitlines():
        found = re.match(r"( {6}| {8})(_?[a-z_]+(?:\.py|/))(?: |$)", line)
        if found is None:
            continue  # a description's continuation
        indent, name = found.groups()
        if len(indent) == 6:
            package = name if name.endswith("/") else ""
            named.add(name)
        else:
            named.add(package + name)
    return named


def test_the_module_map_in_docs_architecture_shows_the_tree() -> None:
    """The map lists every entry of ``rnnlab/`` (the layers as the tree shows them), and every
    module it names exists (a move or a rename updates the map)."""
    named = module_map()
    pending = {m.rpartition(".")[2] + ".py" for m in PENDING}
    entries = {
        p.name + "/" if p.is_dir() else p.name
        for p in PACKAGE.iterdir()
        if p.name != "__pycache__" and (p.is_dir() or p.suffix == ".py")
    }
    assert sorted(entries - pending - named) == [], "add them to docs/architecture.md's map"
    assert sorted(n for n in named if not (PACKAGE / n).exists()) == [], "gone: update the map"
    assert {"run/_train.py", "sweep/_coordinator.py", "base/"} <= named  # the map was read
