"""rnnlab's pytest plugin (entry point ``pytest11``): fixtures for testing rnnlab plugins.

Loaded by pytest wherever rnnlab is installed, so it imports nothing heavy until a fixture runs.

Fixtures:
    rnnlab_registry: ``rnnlab_registry(kind, name, cls)`` -> a registry of the installed plugins
        plus ``cls`` registered as ``name`` for this test only (nothing global changes).
    rnnlab_mlflow: a real, empty MLflow sqlite store in the test's folder, set as
        MLFLOW_TRACKING_URI; the fixture's value is its URI. The store is a copy of
        ``rnnlab_mlflow_template``, so MLflow's migrations (seconds) run once per session.
    rnnlab_mlflow_template: (session) the path of an empty sqlite store MLflow has migrated, to
        copy (never to write: tests share it).
    rnnlab_sweep: ``rnnlab_sweep(yaml_text, *args)`` runs ``rnnlab sweep`` on that text in the
        test's folder (real worker processes; only installed plugins reach the workers) and
        returns the click result; the study and runs stay in that folder.

Example:
    >>> def test_my_cell_in_a_sweep(rnnlab_mlflow, rnnlab_sweep):
    ...     result = rnnlab_sweep(SWEEP_YAML)
    ...     assert result.exit_code == 0
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def rnnlab_registry() -> Callable[[str, str, type], Any]:
    def make(kind: str, name: str, cls: type) -> Any:
        from rnnlab.testing import registry_with

        return registry_with(kind, cls, name)

    return make


@pytest.fixture(scope="session")
def rnnlab_mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("rnnlab-mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments(max_results=1)  # creates and migrates
    return path


@pytest.fixture
def rnnlab_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rnnlab_mlflow_template: Path
) -> str:
    shutil.copy(rnnlab_mlflow_template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def rnnlab_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rnnlab_mlflow: str
) -> Callable[..., Any]:
    def run(text: str, *args: str) -> Any:
        from click.testing import CliRunner

        from rnnlab.cli import cli

        monkeypatch.chdir(tmp_path)
        path = tmp_path / "sweep.yaml"
        path.write_text(text)
        return CliRunner().invoke(cli, ["sweep", str(path), *args])

    return run
