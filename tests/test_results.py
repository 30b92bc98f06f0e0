"""A sweep as data (issue 21): rnnlab.results and rnnlab.flow on a tiny real sweep (a real
worker, Optuna journal and MLflow sqlite store), the outcome table the sweep logged and the
report's table agreeing with the DataFrame, a running sweep's unfinished trials, `rnnlab runs`."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from mlflow import MlflowClient

import rnnlab
from rnnlab._names import FLOW_ARRAYS, FLOW_FILE, PARENT, TABLE_YAML
from rnnlab.cli import cli

SWEEP = """\
name: frames
dataset: {name: adding, seq_len: 6, val_size: 16, test_size: 16}
cell: {name: rnn, hidden_size: 4}
train: {steps: 4, batch_size: 4, eval_every: 2, probe_every: 2, log_every: 1, device: cpu,
        plots: false}
sweep:
  workers: 1
  seeds: [0, 1]
  space:
    cell: [{name: rnn}, {name: gru}]
    remedies: [[], [clip]]
    dataset.seq_len: [6]
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("frames")
    path = folder / "frames.yaml"
    path.write_text(SWEEP)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("CUDA_VISIBLE_DEVICES", "")
        result = CliRunner().invoke(cli, ["sweep", str(path)])
        assert result.exit_code == 0, result.output
    return {
        "folder": folder,
        "file": path,
        "uri": uri,
        "storage": str(folder / "rnnlab-optuna.journal"),
    }


def _results(sweep: dict[str, Any], target: str | None = None, **kw: Any) -> Any:
    return rnnlab.results(target or str(sweep["file"]), storage=kw.get("storage", sweep["storage"]))


def test_results_has_one_row_per_trial_with_the_documented_columns(
    sweep: dict[str, Any],
) -> None:
    df = _results(sweep)
    assert "results" in rnnlab.__all__ and "flow" in rnnlab.__all__
    assert len(df) == 8
    assert list(df.columns[:8]) == [
        "trial", "key", "cell", "remedies", "dataset.seq_len", "seed", "outcome", "objective",
    ]  # fmt: skip
    assert list(df.columns[-4:]) == ["run_id", "seconds", "device", "host"]
    for metric in ("val/loss", "test/loss", "grad/log10_ratio", "grad/target/log10_ratio"):
        assert metric in df.columns
    assert sorted(df.trial) == list(range(8))
    assert set(df.cell) == {"rnn", "gru"} and set(df.remedies) == {"none", "clip"}
    assert set(df["dataset.seq_len"]) == {6}  # a listed number stays a number
    assert sorted(df.seed) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert set(df.outcome) == {"completed"}
    assert (df.seconds > 0).all() and df.device.str.startswith("cpu").all()
    # every row is its MLflow run: the objective is the run's final val/loss
    client = MlflowClient(sweep["uri"])
    for row in df.itertuples():
        run = client.get_run(row.run_id)
        assert run.data.tags["rnnlab.trial"] == str(row.trial)
        assert math.isclose(row.objective, run.data.metrics["val/loss"], rel_tol=1e-6)
    # a sweep by its name gives the same frame
    by_name = _results(sweep, "frames")
    assert by_name.drop(columns="seconds").equals(df.drop(columns="seconds"))


def test_the_table_the_sweep_logged_and_the_report_agree_with_results(
    sweep: dict[str, Any],
) -> None:
    from rnnlab import report
    from rnnlab.plugins import make_plugin_manager

    df = _results(sweep)
    grouped = df.groupby(["cell", "remedies"]).objective
    client = MlflowClient(sweep["uri"])
    study, plan = report.open_results(str(sweep["file"]), sweep["storage"])
    parent = str(study.user_attrs[PARENT])
    logged = yaml.safe_load(Path(client.download_artifacts(parent, TABLE_YAML)).read_text())
    data = report.collect(study, plan, sweep["uri"], make_plugin_manager().infos)
    assert len(logged) == len(data.table) == 4
    for table in (logged, data.table):
        for row in table:
            group = grouped.get_group((row["cell"], row["remedies"]))
            assert row["n"] == group.count() == 2
            assert math.isclose(row["mean"], group.mean(), rel_tol=1e-9)
            assert math.isclose(row["std"], group.std(), rel_tol=1e-9)
            assert math.isclose(row["best"], group.min(), rel_tol=1e-9)
    # and the report's trials are the frame's rows
    assert sorted((t.number, t.run_id) for t in data.trials) == sorted(
        zip(df.trial, df.run_id, strict=True)
    )


def test_a_running_sweep_has_queued_and_running_trials(
    sweep: dict[str, Any], tmp_path: Path
) -> None:
    import optuna

    copy = tmp_path / "journal"
    shutil.copy(sweep["storage"], copy)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(copy)))
    study = optuna.load_study(study_name="frames", storage=storage)
    from rnnlab.sweep import encode

    params = {"cell": encode({"name": "rnn"}), "remedies": encode([]), "dataset.seq_len": 6}
    study.enqueue_trial(params)
    study.enqueue_trial(params)
    study.ask()  # one of them taken: running, not finished
    df = _results(sweep, storage=str(copy))
    assert len(df) == 10
    unfinished = df[df.trial >= 8].sort_values("trial")
    assert list(unfinished.outcome) == ["running", "queued"]
    assert unfinished.objective.isna().all()
    assert (df[df.trial < 8].outcome == "completed").all()


def test_flow_returns_the_runs_gradient_flow_arrays(sweep: dict[str, Any]) -> None:
    from rnnlab.errors import ConfigError

    run_id = str(_results(sweep).run_id.iloc[0])
    arrays = rnnlab.flow(run_id, tracking_uri=sweep["uri"])
    assert set(FLOW_ARRAYS) <= set(arrays)
    stored = MlflowClient(sweep["uri"]).download_artifacts(run_id, FLOW_FILE)
    with np.load(stored) as data:
        for name in data.files:
            np.testing.assert_array_equal(arrays[name], data[name])
    steps, norms = arrays["steps"], arrays["norms"]
    assert steps[0] == 0 and list(steps) == sorted(steps)  # probe steps, from the first
    assert norms.shape == (len(steps), 1, 6)  # [probe, layer, t] at T=6
    with pytest.raises(ConfigError, match="no run 'nope'"):
        rnnlab.flow("nope", tracking_uri=sweep["uri"])


def test_rnnlab_runs_lists_the_trials(
    sweep: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(sweep["folder"])
    df = _results(sweep)
    result = CliRunner().invoke(cli, ["runs", "--tracking-uri", sweep["uri"]])
    assert result.exit_code == 0, result.output
    for row in df.itertuples():
        assert row.run_id in result.output
        line = next(x for x in result.output.splitlines() if row.run_id in x)
        assert f"{row.objective:.4g}" in line and "completed" in line
    assert "completed 8" in result.output
    missing = CliRunner().invoke(cli, ["runs", "nosuch"])
    assert missing.exit_code != 0 and "no sweep 'nosuch'" in missing.output


def test_the_notebook_page_runs_end_to_end(
    sweep: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/notebook.md's python blocks, run in order on this sweep (its file for the
    flagship's), from the sweep's folder as the page says."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "notebook.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 4
    code = "\n".join(blocks)
    assert 'SWEEP = "experiments/vanishing.yaml"' in code
    code = code.replace('"experiments/vanishing.yaml"', repr(str(sweep["file"])))
    monkeypatch.chdir(sweep["folder"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep["uri"])
    found: dict[str, Any] = {}
    exec(compile(code, "docs/notebook.md", "exec"), found)
    assert len(found["df"]) == 8
    assert found["pivot"].shape == (2, 2)  # cells x (seq_len, remedies)
    assert found["summary"].seeds.tolist() == [2, 2, 2, 2]
    assert len(found["ax"].get_lines()) == 4
    assert (sweep["folder"] / "gradient_flow_by_cell.png").stat().st_size > 1000


def test_the_report_rows_link_their_runs_and_the_findings_their_rows(
    sweep: dict[str, Any],
) -> None:
    from rnnlab import report
    from rnnlab.plugins import make_plugin_manager

    study, plan = report.open_results(str(sweep["file"]), sweep["storage"])
    data = report.collect(study, plan, sweep["uri"], make_plugin_manager().infos)
    page = report.render(data, [])
    for number in range(1, len(data.table) + 1):
        assert f'<tr id="row-{number}"' in page
    for trial in data.trials:  # a sqlite store and no UI running: the ids, not links
        assert f'title="{trial.run_id}"' in page
    found = report.sweep_findings(data)
    assert found  # 4 steps of training: the adding problem is not solved, the cells fail
    for f in found:
        assert f'{f.text} <a href="#row-{f.row + 1}">' in page.replace("&#x27;", "'")
    data.tracking_uri = "http://127.0.0.1:1"
    linked = report.render(data, [])
    experiment = data.trials[0].run.info.experiment_id
    assert f'href="http://127.0.0.1:1/#/experiments/{experiment}/runs/{data.trials[0].run_id}"' in (
        linked
    )


def test_collect_reads_the_histories_mlflow_holds(sweep: dict[str, Any]) -> None:
    """The report's histories, read in bulk (issue 21), are MLflow's per-run histories."""
    from rnnlab import report
    from rnnlab.plugins import make_plugin_manager

    study, plan = report.open_results(str(sweep["file"]), sweep["storage"])
    data = report.collect(study, plan, sweep["uri"], make_plugin_manager().infos)
    client = MlflowClient(sweep["uri"])
    keys = {"objective": "val/loss", "ratio": "grad/log10_ratio"}
    keys["target_ratio"] = "grad/target/log10_ratio"
    assert len(data.trials) == 8
    for trial in data.trials:
        for attribute, key in keys.items():
            logged = sorted((m.step, m.value) for m in client.get_metric_history(trial.run_id, key))
            assert logged and getattr(trial, attribute) == logged, (trial.number, key)
        assert trial.flow is not None and trial.spectra is not None


def test_figures_drawn_in_processes_equal_those_drawn_in_turn_and_are_kept(
    sweep: dict[str, Any], tmp_path: Path
) -> None:
    """The report's figures drawn in forked processes are byte for byte those drawn in this
    process, in the page's order; drawn again from the same inputs they are kept, and a changed
    input draws them again (issue 21)."""
    from rnnlab import report
    from rnnlab.plugins import make_plugin_manager
    from rnnlab.report._drawing import inputs_digest

    study, plan = report.open_results(str(sweep["file"]), sweep["storage"])
    data = report.collect(study, plan, sweep["uri"], make_plugin_manager().infos)
    (tmp_path / "turn").mkdir()
    (tmp_path / "forked").mkdir()
    in_turn = report.draw(data, tmp_path / "turn", processes=1)
    forked = report.draw(data, tmp_path / "forked", processes=2)
    names = [p.name for p in in_turn]
    assert names == [p.name for p in forked] == [
        "objective_heatmap.png", "gradient_flow.png", "log10_ratio.png", "learning_curves.png",
        "lyapunov_spectra.png", "lyapunov_scatter.png",
    ]  # fmt: skip
    for mine, theirs in zip(in_turn, forked, strict=True):
        assert mine.read_bytes() == theirs.read_bytes(), mine.name
    drawn = {p.name: p.stat().st_mtime_ns for p in forked}
    assert report.draw(data, tmp_path / "forked", processes=2) == forked
    assert {p.name: p.stat().st_mtime_ns for p in forked} == drawn  # kept, not drawn again
    before = inputs_digest(data)
    step, value = data.trials[0].objective[-1]
    data.trials[0].objective[-1] = (step, value * 2)  # as if the run had been re-read
    assert inputs_digest(data) != before
    report.draw(data, tmp_path / "forked", processes=2)
    assert all(p.stat().st_mtime_ns != drawn[p.name] for p in forked)


KILLED_ONCE = """\
name: killed
dataset: {name: adding, seq_len: 6, val_size: 16}
cell: {name: faulty, hidden_size: 4}
train: {steps: 4, batch_size: 4, eval_every: 2, probe_every: 2, log_every: 1, plots: false,
        dynamics_every: 0}
sweep:
  workers: 1
  seeds: [0]
  space:
    cell.fault: [kill_once, none]
    cell.after: [2]
"""


def test_an_attempt_that_ran_again_is_stopped_not_running(sweep_env, tmp_path: Path) -> None:
    """Issue 21: a worker killed once mid-trial leaves an Optuna FAIL trial without an outcome
    (its key ran again as another trial); after the sweep it is ``stopped``, never ``running``,
    and ``rnnlab runs`` and the report's queued-or-running count say the same."""
    import optuna

    from rnnlab.sweep import storage_for, unfinished

    (tmp_path / "killed.yaml").write_text(KILLED_ONCE)
    done = CliRunner().invoke(cli, ["sweep", "killed.yaml"])
    assert done.exit_code == 0, done.output
    storage = str(tmp_path / "rnnlab-optuna.journal")
    df = rnnlab.results("killed.yaml", storage=storage)
    assert sorted(df.outcome) == ["completed", "completed", "stopped"], df
    stopped = df[df.outcome == "stopped"].iloc[0]
    assert stopped["cell.fault"] == "kill_once" and math.isnan(stopped.objective)
    again = df[(df["cell.fault"] == "kill_once") & (df.outcome == "completed")]
    assert len(again) == 1 and again.trial.iloc[0] > stopped.trial  # the key's second attempt
    run = MlflowClient(sweep_env["MLFLOW_TRACKING_URI"]).get_run(str(stopped.run_id))
    assert run.data.tags["rnnlab.outcome"] == "stopped"  # its MLflow run says the same
    study = optuna.load_study(study_name="killed", storage=storage_for(storage))
    assert unfinished(study) == 0 == df.outcome.isin(["running", "queued"]).sum()
    listed = CliRunner().invoke(cli, ["runs", "killed"])
    assert listed.exit_code == 0, listed.output
    assert "completed 2, stopped 1" in listed.output and "running" not in listed.output
