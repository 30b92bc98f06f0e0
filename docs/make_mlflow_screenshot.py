"""Regenerate docs/mlflow-runs-screenshot.png: MLflow's runs page of a small real sweep, opened
on the deep link rnnlab prints, the sweep's parent run expanded to its trials.

    python docs/make_mlflow_screenshot.py   # a few minutes on a 2-core CPU

In a temporary folder it runs a small sweep (tanh RNN, LSTM and GRU, without a remedy and with
gradient clipping, on the adding problem at T=30, one seed, 100 steps), starts `mlflow ui` on
its store on loopback and photographs the page with Debian's Chromium (`apt-get install
chromium`), driven as tests/test_mlflow_browser.py drives it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.test_mlflow_browser: the browser and the server
TARGET = HERE / "mlflow-runs-screenshot.png"

SWEEP = """\
name: vanishing-small
seed: 0
dataset: {name: adding, seq_len: 30, val_size: 256}
cell: {name: rnn, hidden_size: 32}
train: {steps: 100, batch_size: 32, lr: 0.01, eval_every: 50, probe_every: 50, device: cpu}
sweep:
  workers: 2
  seeds: [0]
  space:
    cell: [{name: rnn}, {name: lstm}, {name: gru}]
    remedies: [[], [clip]]
"""


def main() -> None:
    from click.testing import CliRunner
    from mlflow import MlflowClient

    from rnnlab._names import ui_links
    from rnnlab.cli import cli
    from tests.test_mlflow_browser import Browser, mlflow_ui, show_runs

    with tempfile.TemporaryDirectory(prefix="rnnlab-mlflow-shot-") as tmp:
        folder = Path(tmp)
        (folder / "sweep.yaml").write_text(SWEEP)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        os.chdir(folder)
        os.environ["MLFLOW_TRACKING_URI"] = uri
        result = CliRunner().invoke(cli, ["sweep", "sweep.yaml"])
        if result.exit_code != 0:
            raise SystemExit(result.output)
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("vanishing-small")
        assert experiment is not None
        runs = client.search_runs([experiment.experiment_id])
        parent = next(r for r in runs if r.data.tags.get("rnnlab.role") == "sweep")
        children = [r.info.run_name for r in runs if r.data.tags.get("rnnlab.role") == "trial"]
        with mlflow_ui(uri, folder) as base:
            browser = Browser(folder, size=(1500, 800))
            try:
                runs_url = ui_links(base, experiment.experiment_id)[0]
                show_runs(browser, runs_url, parent.info.run_name, children)
                browser.screenshot(TARGET)
            finally:
                browser.close()
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
