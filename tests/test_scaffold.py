"""`rnnlab new-plugin`: the generated package passes its tests and rnnlab discovers it."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnnlab.cli import cli

PLURALS = {"cell": "cells", "dataset": "datasets", "remedy": "remedies"}


def generate(tmp_path: Path, name: str, kind: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["new-plugin", name, "--kind", kind, "--dir", str(tmp_path)])
    return result.exit_code, result.output


def install_dist_info(folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make ``folder`` look like site-packages holding the generated package, as pip would."""
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "\n".join(f"{k} = {v}" for k, v in project["entry-points"]["rnnlab"].items())
    (info / "entry_points.txt").write_text(f"[rnnlab]\n{lines}\n")
    monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    return str(name)


@pytest.mark.parametrize(
    ("name", "kind", "dist", "package", "plugin"),
    [
        ("my-cell", "cell", "rnnlab-my-cell", "rnnlab_my_cell", "my_cell"),
        ("rnnlab-SignTask", "dataset", "rnnlab-signtask", "rnnlab_signtask", "signtask"),
        ("noisy_grads", "remedy", "rnnlab-noisy_grads", "rnnlab_noisy_grads", "noisy_grads"),
    ],
)
def test_generated_plugin_passes_its_tests_and_is_discovered(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    kind: str,
    dist: str,
    package: str,
    plugin: str,
) -> None:
    code, output = generate(tmp_path, name, kind)
    assert code == 0, output
    folder = tmp_path / dist
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    expected = [
        "README.md",
        f"{package}/__init__.py",
        f"{package}/{kind}.py",
        "pyproject.toml",
        f"tests/test_{kind}.py",
    ]
    assert files == sorted(expected)
    assert all(f in output for f in expected) and "rnnlab plugins" in output
    pyproject = tomllib.loads((folder / "pyproject.toml").read_text())
    assert pyproject["project"]["dependencies"] == ["rnnlab"]
    assert pyproject["project"]["entry-points"]["rnnlab"] == {plugin: package}
    assert "import torch" not in (folder / package / "__init__.py").read_text()

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert " passed" in run.stdout and "failed" not in run.stdout

    distribution = install_dist_info(folder, monkeypatch)
    monkeypatch.delenv("RNNLAB_LOAD_PLUGINS", raising=False)
    listing = CliRunner().invoke(cli, ["plugins", "--json"])
    assert listing.exit_code == 0, listing.output
    data = json.loads(listing.output)
    (entry,) = [d for d in data if d["distribution"] == distribution]
    assert entry["errors"] == [] and entry["plugins"] == [plugin]
    assert entry[PLURALS[kind]] == [plugin]
    assert all(entry[k] == [] for k in PLURALS.values() if k != PLURALS[kind])
    for module in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        del sys.modules[module]  # no stale copy for later tests


@pytest.mark.parametrize("name", ["9lives", "my cell", "rnnlab-", "my.cell", "cells"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    code, output = generate(tmp_path, name, "cell")
    assert code == 2
    assert f"invalid plugin name {name!r}" in output
    assert list(tmp_path.iterdir()) == []


def test_non_empty_folder_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "rnnlab-mine"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    code, output = generate(tmp_path, "mine", "remedy")
    assert code == 2 and "already exists and is not empty" in output
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    target.joinpath("keep.txt").unlink()  # an empty folder is fine
    assert generate(tmp_path, "mine", "remedy")[0] == 0
