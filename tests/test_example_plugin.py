"""End to end: tests/example_plugin/, a separate package installed with pip, is discovered through
its entry point and its cell, task and remedy run together in a real sweep.

The package is pip-installed (``pip install --target``, pip building it in its own isolated
environment) into a scratch folder that the running interpreter puts first on its path: the
subprocesses run ``sys.executable`` with this environment exactly as it is (the active virtual
environment included), plus the plugin. ``nox -s plugin-e2e`` installs it into the session instead;
then that environment is used as is.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

PACKAGE = Path(__file__).parent / "example_plugin"
DIST = "rnnlab-example"

SWEEP = """\
name: example
seed: 0
dataset: {name: temporal_order, seq_len: 12, val_size: 64, test_size: 64}
cell: {name: mgu, hidden_size: 8}
remedies: []
train: {steps: 6, batch_size: 16, lr: 0.01, eval_every: 3, probe_every: 2, log_every: 1,
        device: cpu}
sweep:
  sampler: grid
  workers: 2
  space:
    cell: [{name: mgu}, {name: rnn}]
    remedies: [[], [norm_preserving], [norm_preserving, clip]]
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """PYTHONPATH for the subprocesses: a folder the example plugin is pip-installed into, or ""
    when this environment has it already.

    Not a virtual environment: ``venv.create(..., system_site_packages=True)`` inherits the *base*
    interpreter's site-packages, not the active venv's (issue 13), and ``--no-build-isolation``
    needs build tools this environment may lack. ``pip install --target`` from the running
    interpreter, with pip's default build isolation, needs neither.
    """
    try:
        importlib.metadata.distribution(DIST)
        return ""
    except importlib.metadata.PackageNotFoundError:
        pass
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
        + [str(PACKAGE)],
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"},
        cwd=site,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"pip install of {PACKAGE} failed:\n{done.stdout}{done.stderr}"
    return str(site)


def rnnlab(plugin_path: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}"}
    env.pop("RNNLAB_LOAD_PLUGINS", None)
    if plugin_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [plugin_path, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "rnnlab", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_rnnlab_plugins_discovers_the_installed_package(plugin_path: str, tmp_path: Path) -> None:
    result = rnnlab(plugin_path, "plugins", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["distribution"]: row for row in json.loads(result.stdout)}
    row = rows[DIST]
    assert row["version"] == "0.1.0" and not row["errors"]
    assert (row["cells"], row["datasets"], row["remedies"]) == (
        ["mgu"],
        ["temporal_order"],
        ["norm_preserving"],
    )
    assert "rnnlab" in rows  # the built-ins load beside it


def test_a_sweep_uses_its_cell_task_and_remedy(
    plugin_path: str, tmp_path: Path, rnnlab_mlflow_template: Path
) -> None:
    shutil.copy(rnnlab_mlflow_template, tmp_path / "mlflow.db")  # migrated once per session
    (tmp_path / "example.yaml").write_text(SWEEP)
    result = rnnlab(plugin_path, "sweep", "example.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("example")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 6
    seen = set()
    for run in children:
        tags, metrics = run.data.tags, run.data.metrics
        assert tags["rnnlab.outcome"] == "completed", tags
        assert tags["rnnlab.dataset"] == "temporal_order"
        seen.add((tags["rnnlab.cell"], tags["rnnlab.remedies"]))
        regularised = "norm_preserving" in tags["rnnlab.remedies"]
        assert ("norm_preserving/omega" in metrics) is regularised, metrics.keys()
        if regularised:  # omega = mean (r - 1)^2 >= (mean r - 1)^2, r the logged ratio (Jensen)
            omega, ratio = (
                [m.value for m in client.get_metric_history(run.info.run_id, key)]
                for key in ("norm_preserving/omega", "norm_preserving/ratio")
            )
            assert len(omega) == len(ratio) == 6 and all(r > 0 for r in ratio)
            assert all(0 < o < math.inf for o in omega), omega
            assert all(o >= (r - 1) ** 2 * (1 - 1e-6) for o, r in zip(omega, ratio, strict=True))
    assert {cell for cell, _ in seen} == {"mgu", "rnn"} and len(seen) == 6
