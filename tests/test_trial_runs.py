"""Every child run of a sweep, trained or not, has one name scheme and the tags docs/sweeps.md
promises (issue 17), and the documented MLflow query finds them in a real store."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from rnnlab._names import VERSION
from rnnlab.cli import cli

DOCS = Path(__file__).resolve().parents[1] / "docs"

FRAGILE = """
import rnnlab


class Fragile(rnnlab.Cell):
    capabilities = frozenset({"identity_init"})

    def __init__(self, input_size, hidden_size, params=None):
        raise RuntimeError("the fragile cell cannot be built")

    def init_identity(self, scale, nonlinearity):
        pass


@rnnlab.hookimpl
def register_cells(register):
    register("fragile", Fragile)
"""

SWEEP = """\
name: tagged
dataset: {name: adding, seq_len: 6, val_size: 16, test_size: 16}
cell: {name: rnn, hidden_size: 4}
remedies: [relu]
train: {steps: 2, batch_size: 4, eval_every: 2, probe_every: 2, log_every: 1, device: cpu,
        plots: false}
sweep:
  workers: 1
  space:
    cell.name: [rnn, lstm, fragile]
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, rnnlab_mlflow_template: Path) -> dict[str, Any]:
    """One real sweep (real worker, journal, MLflow sqlite store) with a completed trial, an
    incompatible point and a trial whose set-up fails in the worker."""
    folder = tmp_path_factory.mktemp("tagged")
    site = folder / "site"
    site.mkdir()
    (site / "fragile_plugin.py").write_text(FRAGILE)
    info = site / "rnnlab_fragile-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rnnlab-fragile\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[rnnlab]\nfragile = fragile_plugin\n")
    path = folder / "tagged.yaml"
    path.write_text(SWEEP)
    shutil.copy(rnnlab_mlflow_template, folder / "mlflow.db")  # migrated once per session
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))  # the workers (spawn) get the coordinator's sys.path
        mp.chdir(folder)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("CUDA_VISIBLE_DEVICES", "")
        result = CliRunner().invoke(cli, ["sweep", str(path)])
        assert result.exit_code == 0, result.output
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("tagged")
        assert experiment is not None
        runs = client.search_runs([experiment.experiment_id], max_results=100)
        snippet = _snippet()
        found: dict[str, Any] = {"print": lambda *a: None}
        exec(snippet.replace("vanishing", "tagged"), found)
        import mlflow

        older = mlflow.search_runs(  # the docs' query for trials recorded before rnnlab.role
            experiment_names=["tagged"], filter_string="tags.`rnnlab.trial` LIKE '%'"
        )
    return {"path": path, "runs": runs, "found": found["trials"], "older": older}


def _snippet() -> str:
    text = (DOCS / "sweeps.md").read_text()
    section = text.split("## Finding a sweep's trials in MLflow", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    return code.group(1)


def test_every_child_run_has_the_role_version_source_and_slot(store: dict[str, Any]) -> None:
    children = [r for r in store["runs"] if "mlflow.parentRunId" in r.data.tags]
    by_cell = {r.data.tags["rnnlab.cell"]: r for r in children}
    assert {c: r.data.tags["rnnlab.outcome"] for c, r in by_cell.items()} == {
        "rnn": "completed",
        "lstm": "incompatible",
        "fragile": "failed",
    }
    for cell, run in by_cell.items():
        tags = run.data.tags
        assert tags["rnnlab.role"] == "trial", cell
        assert tags["rnnlab.version"] == VERSION and tags["rnnlab.source"] == str(store["path"])
        assert tags["rnnlab.sweep"] == "tagged" and tags["rnnlab.trial"].isdigit()
        assert tags["rnnlab.slot"] == ("none" if cell == "lstm" else "cpu 0"), cell
        assert run.info.run_name == f"trial {tags['rnnlab.trial']}: cell.name={cell} s0"
    (parent,) = [r for r in store["runs"] if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags["rnnlab.role"] == "sweep"


def test_the_documented_query_finds_every_trial_and_not_the_parent(store: dict[str, Any]) -> None:
    found = store["found"]
    assert sorted(found["tags.rnnlab.cell"]) == ["fragile", "lstm", "rnn"]
    assert set(found["tags.rnnlab.role"]) == {"trial"}
    assert sorted(store["older"]["tags.rnnlab.cell"]) == ["fragile", "lstm", "rnn"]
