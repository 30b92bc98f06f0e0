"""One training run end to end: outcomes, determinism, probes and a real MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import rnnlab
from rnnlab.plugins import make_plugin_manager
from rnnlab.run import (
    MlflowTracker,
    NullTracker,
    SequenceModel,
    build,
    load_run_config,
    summarize,
    train,
)
from rnnlab.testing import plugin_registering
from tests.conftest import TINY


def _run(
    write_config, registry, text: str = TINY, overrides=()
) -> tuple[rnnlab.RunResult, NullTracker]:
    tracker = NullTracker()
    result = train(load_run_config(write_config(text), registry, list(overrides)), tracker)
    return result, tracker


def test_completed_run_records_every_metric(write_config, registry) -> None:
    result, tracker = _run(write_config, registry)
    assert result.outcome == "completed" and result.steps_done == 6
    h = tracker.history
    assert [s for s, _ in h["val/loss"]] == [0, 3, 6]  # before training, every 3 steps, the end
    assert [s for s, _ in h["grad/log10_ratio"]] == [0, 2, 4, 5]  # every 2 steps and the last
    assert [s for s, _ in h["weights/spectral_norm"]] == [0, 3, 6]  # with every evaluation
    for key in (
        "train/loss",
        "grad/global_norm",
        "grad/clipped",
        "grad/decay_rate",
        "grad/steps_in_past",
        "grad/underflow",
        "weights/spectral_norm",
        "val/accuracy",
        "grad/param/cells.0.rnn.weight_hh_l0",
        "grad/target/log10_ratio",
        "grad/target/decay_rate",
        "grad/target/steps_in_past",
        "grad/target/underflow",
    ):
        assert key in h and all(np.isfinite(v) for _, v in h[key]), key
    # the test split once, at the end, on the final weights (the default selection)
    assert h["test/loss"] == [(6, result.metrics["test/loss"])] and "test/accuracy" in h
    assert tracker.tags["rnnlab.selection"] == "final" and result.selected_step == 6
    assert tracker.tags["rnnlab.outcome"] == "completed" and tracker.status == "FINISHED"
    assert tracker.tags["rnnlab.remedies"] == "clip" and tracker.tags["rnnlab.device"] == "cpu"
    assert tracker.params["train.lr"] == "0.01"
    assert set(tracker.artifacts) == {
        "config.yaml",
        "gradient_flow.npz",
        "gradient_flow.png",
        "gradient_flow_curves.png",
        "dynamics.npz",
        "lyapunov.png",
        "model.pt",
        "summary.json",
    }


def test_plots_false_keeps_the_curves_and_draws_no_figures(write_config, registry) -> None:
    _, tracker = _run(write_config, registry, overrides=["train.plots=false"])
    assert set(tracker.artifacts) == {
        "config.yaml",
        "gradient_flow.npz",
        "dynamics.npz",
        "model.pt",
        "summary.json",
    }


def test_same_seed_same_metrics_other_seed_differs(write_config, registry) -> None:
    _, first = _run(write_config, registry)
    _, again = _run(write_config, registry)
    _, other = _run(write_config, registry, overrides=["seed=1"])
    assert first.history == again.history
    assert first.history["train/loss"] != other.history["train/loss"]


def test_nan_is_a_diverged_outcome_not_a_crash(write_config, registry) -> None:
    text = TINY.replace("lstm", "rnn").replace("[clip]", "[{name: relu, scale: 1000.0}]")
    result, tracker = _run(write_config, registry, text)
    assert result.outcome == "diverged" and result.diverged_at == 0
    assert "diverged at step 0" in result.message
    assert tracker.tags["rnnlab.outcome"] == "diverged" and tracker.status == "FINISHED"


def test_an_exception_in_training_is_a_failed_outcome(write_config) -> None:
    from rnnlab.base import Cell

    class Flaky(Cell):
        calls = 0

        def forward(self, x_t, state):
            Flaky.calls += 1
            if Flaky.calls > 40:
                raise RuntimeError("cell exploded")
            h = (state[0] + x_t.sum(-1, keepdim=True)).tanh()
            return h, (h,)

    plugins = make_plugin_manager(
        load=None, extra=[("flaky", plugin_registering("cell", "flaky", Flaky))]
    )
    text = TINY.replace("lstm", "flaky").replace("[clip]", "[]")
    result, tracker = _run(write_config, plugins.registry(), text)
    assert result.outcome == "failed" and "RuntimeError: cell exploded" in result.message
    assert tracker.status == "FAILED" and tracker.tags["rnnlab.outcome"] == "failed"


def test_should_stop_prunes(write_config, registry) -> None:
    tracker = NullTracker()
    run = load_run_config(write_config(TINY), registry)
    result = train(run, tracker, should_stop=lambda step, metrics: step >= 3)
    assert result.outcome == "pruned" and result.steps_done == 3


def test_stacked_layers_are_probed_each(write_config, registry) -> None:
    _, tracker = _run(write_config, registry, overrides=["model.layers=2"])
    assert "grad/log10_ratio/layer0" in tracker.history and "grad/log10_ratio" in tracker.history
    assert "weights/spectral_norm/layer0" in tracker.history


def test_underflow_is_reported_not_hidden() -> None:
    summary = summarize(np.array([0.0, 0.0, 1e-20, 1e-10, 1.0]))
    assert summary.underflow == pytest.approx(0.4)
    assert summary.log10_ratio == pytest.approx(np.log10(np.finfo(np.float32).tiny))  # a bound
    assert summary.steps_in_past == pytest.approx(0.4)
    assert summary.decay_rate == pytest.approx(10.0)  # 10 orders of magnitude per step back


def test_mlflow_store_holds_the_run(write_config, registry, mlflow_uri: str) -> None:
    from mlflow import MlflowClient

    run = load_run_config(write_config(TINY), registry)
    result = train(run, MlflowTracker())
    client = MlflowClient(mlflow_uri)
    stored = client.get_run(result.run_id)
    assert stored.info.status == "FINISHED" and stored.info.run_name == "lstm+clip adding T=12 s0"
    tags = stored.data.tags
    assert {
        k: tags[k]
        for k in (
            "rnnlab.cell",
            "rnnlab.dataset",
            "rnnlab.remedies",
            "rnnlab.seed",
            "rnnlab.outcome",
            "rnnlab.device",
        )
    } == {
        "rnnlab.cell": "lstm",
        "rnnlab.dataset": "adding",
        "rnnlab.remedies": "clip",
        "rnnlab.seed": "0",
        "rnnlab.outcome": "completed",
        "rnnlab.device": "cpu",
    }
    assert stored.data.params["dataset.seq_len"] == "12"
    assert client.get_experiment(stored.info.experiment_id).name == "tiny"
    history = client.get_metric_history(result.run_id, "val/loss")
    assert [m.step for m in history] == [0, 3, 6]
    assert len(client.get_metric_history(result.run_id, "grad/log10_ratio")) == 4
    names = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "gradient_flow.npz", "gradient_flow.png", "summary.json"} <= names
    folder = Path(client.download_artifacts(result.run_id, ""))
    flow = np.load(folder / "gradient_flow.npz")
    assert flow["norms"].shape == (4, 1, 12) and list(flow["steps"]) == [0, 2, 4, 5]
    assert (flow["norms"] > 0).all()
    assert yaml.safe_load((folder / "config.yaml").read_text())["cell"]["name"] == "lstm"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["outcome"] == "completed" and summary["metrics"]["val/loss"] > 0
    png = (folder / "gradient_flow.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


class KeepModel(rnnlab.Remedy):
    """Keeps the model it is applied to, so that a test can read its raw parameters."""

    models: list[SequenceModel] = []

    def apply_model(self, model: SequenceModel) -> None:
        KeepModel.models.append(model)


def test_training_keeps_cell_constraints(write_config) -> None:
    # the raw parameter u after training: recurrent_weight() clamps it, so it is bounded anyway
    # (without constrain() these settings take |u| to ~3)
    extra = [("keep", plugin_registering("remedy", "keep", KeepModel))]
    registry = make_plugin_manager(load=None, extra=extra).registry()
    text = TINY.replace("name: lstm", "name: indrnn, recurrent_max: 0.5")
    text = text.replace("[clip]", "[keep]")
    KeepModel.models.clear()
    run = load_run_config(write_config(text), registry, ["train.lr=1.0"])
    assert train(run, NullTracker()).outcome == "completed"
    ((cell,),) = [model.layers() for model in KeepModel.models]
    assert float(cell.u.detach().abs().max()) <= 0.5 + 1e-6


def test_a_plugin_that_fails_to_build_is_named(write_config) -> None:
    from rnnlab.base import Cell
    from rnnlab.errors import SetupError

    class Broken(Cell):
        def __init__(self, input_size, hidden_size, params=None):
            raise ValueError("bad weights")

    extra = [("broken", plugin_registering("cell", "broken", Broken))]
    registry = make_plugin_manager(load=None, extra=extra).registry()
    run = load_run_config(write_config(TINY.replace("lstm", "broken")), registry)
    tracker = NullTracker()
    with pytest.raises(
        SetupError, match="cell 'broken' .* failed to build: ValueError: bad weights"
    ):
        train(run, tracker)
    assert tracker.status is None  # nothing was recorded


class StatePenalty(rnnlab.Remedy):
    """A loss term that needs the hidden states: weight * mean of h_t^2 over every step."""

    class Params(rnnlab.Params):
        weight: float = 1.0

    needs_states = True
    seen: list[int] = []

    def loss_term(self, loss, traces):
        StatePenalty.seen.append(len(traces))
        hidden = [h for trace in traces for h in trace.hidden]
        penalty = torch.stack([h.square().mean() for h in hidden]).mean()
        return self.params.weight * penalty, {"penalty/value": float(penalty.detach())}


def test_a_loss_term_trains_but_the_probes_measure_the_task_alone(write_config) -> None:
    registry = make_plugin_manager(
        load=None,
        extra=[("penalty", plugin_registering("remedy", "penalty", StatePenalty))],
    ).registry()
    text = TINY.replace("[clip]", "[]").replace("lstm", "rnn")
    plain, plain_tracker = _run(write_config, registry, text)
    StatePenalty.seen.clear()
    heavy = ["remedies=[{name: penalty, weight: 100.0}]", "model.layers=2"]
    _, tracker = _run(write_config, registry, text, heavy)
    assert StatePenalty.seen == [2] * 6  # every training step, one trace per layer
    _, light = _run(write_config, registry, text, [heavy[0].replace("100.0", "0.0"), heavy[1]])
    assert [s for s, _ in tracker.history["penalty/value"]] == [0, 2, 4, 5]
    # step 0: same weights, same batch; the term's own gradient must not leak into the curve
    ratio = tracker.history["grad/log10_ratio/layer0"][0][1]
    assert ratio == pytest.approx(light.history["grad/log10_ratio/layer0"][0][1], abs=1e-9)
    # ... but it reaches the weights (the global norm includes it) and changes the training
    assert tracker.history["grad/global_norm"][0][1] > 2 * light.history["grad/global_norm"][0][1]
    assert tracker.history["train/loss"][-1] != light.history["train/loss"][-1]
    assert "penalty/value" not in plain_tracker.history and plain.outcome == "completed"


def test_the_tracker_batches_metrics_and_tags_and_writes_them_all(mlflow_uri) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    first = MlflowTracker(flush_every=100)
    first.start("batched", "one", {"rnnlab.outcome": "running"}, {"a": "1"})
    for step in range(250):  # two batches mid-run, the rest at finish
        first.log_metrics({"x": float(step)}, step)
    first.set_tags({"rnnlab.outcome": "completed"})
    assert client.get_run(first.run_id).data.tags["rnnlab.outcome"] == "running"  # not yet
    first.finish("FINISHED")
    stored = client.get_run(first.run_id)
    assert stored.data.tags["rnnlab.outcome"] == "completed" and stored.info.status == "FINISHED"
    assert [m.value for m in client.get_metric_history(first.run_id, "x")] == list(range(250))


NAN_AFTER_THE_UPDATE = """\
name: nan
dataset: {name: adding, seq_len: 100, val_size: 64, test_size: 64}
cell: {name: rnn, nonlinearity: relu, hidden_size: 128}
train: {steps: 1, batch_size: 16, optimizer: sgd, lr: 30.0}
"""


def test_a_nonfinite_evaluation_after_the_last_update_is_diverged(write_config, registry) -> None:
    """The update's loss and gradient are finite, the weights it leaves are not: issue 14's
    reproduction (ReLU RNN, SGD lr 30, one step) used to end `completed` with val/loss NaN."""
    result, tracker = _run(write_config, registry, NAN_AFTER_THE_UPDATE)
    assert result.outcome == "diverged" and result.diverged_at == 1 and result.steps_done == 1
    assert result.message.startswith("diverged at step 1: the val evaluation after 1 updates")
    assert "val/loss nan" in result.message
    assert tracker.tags["rnnlab.outcome"] == "diverged" and tracker.status == "FINISHED"
    assert tracker.history["diverged_at"] == [(1, 1.0)]
    assert "test/loss" not in tracker.history  # no test split for a run that did not complete


class NanTest(rnnlab.Dataset):
    """The adding problem whose test split has NaN targets: only the final evaluation fails."""

    kind = rnnlab.TaskKind.REGRESSION_LAST

    def __init__(self, params=None, seed=0):
        super().__init__(params, seed)
        from rnnlab_tasks.adding import AddingProblem

        self.inner = AddingProblem(AddingProblem.Params(seq_len=8, val_size=32), seed)
        self.input_size, self.output_size, self.seq_len = 2, 1, 8

    def batches(self, split, batch_size):
        for x, y in self.inner.batches("val" if split == "test" else split, batch_size):
            yield x, y * float("nan") if split == "test" else y


def test_a_nonfinite_test_evaluation_is_diverged(write_config) -> None:
    registry = make_plugin_manager(
        load=None, extra=[("nantest", plugin_registering("dataset", "nantest", NanTest))]
    ).registry()
    text = TINY.replace("adding, seq_len: 12, val_size: 64", "nantest")
    result, tracker = _run(write_config, registry, text)
    assert result.outcome == "diverged" and result.diverged_at == 6 and result.steps_done == 6
    assert "the test evaluation gave test/loss nan" in result.message
    assert tracker.tags["rnnlab.outcome"] == "diverged"


BEST_VAL = """\
name: best
dataset: {name: adding, seq_len: 12, val_size: 64, test_size: 64}
cell: {name: rnn, hidden_size: 8}
train: {steps: 6, batch_size: 16, lr: 0.5, eval_every: 1, probe_every: 2, select: best_val}
"""


def test_best_val_reports_test_for_the_weights_of_the_best_evaluation(
    write_config, registry
) -> None:
    result, tracker = _run(write_config, registry, BEST_VAL)
    assert result.outcome == "completed" and tracker.tags["rnnlab.selection"] == "best_val"
    val = tracker.history["val/loss"]
    best = min(val, key=lambda sv: sv[1])[0]
    assert 0 < best < 6, val  # these settings get worse after their best evaluation
    ((step, test),) = tracker.history["test/loss"]
    assert step == best == result.selected_step
    # the same run stopped at that step, tested on its final weights, scores the same
    stopped, _ = _run(
        write_config, registry, BEST_VAL, [f"train.steps={best}", "train.select=final"]
    )
    assert stopped.metrics["test/loss"] == pytest.approx(test, rel=1e-4)
    final, _ = _run(write_config, registry, BEST_VAL, ["train.select=final"])
    assert final.metrics["test/loss"] != pytest.approx(test, rel=1e-4)
    assert final.selected_step == 6


def test_rmsprop_smoothing_constant_is_a_train_option(write_config, registry) -> None:
    from rnnlab.run import make_optimizer

    def alpha(*overrides: str) -> float:
        run = load_run_config(write_config(TINY), registry, ["train.optimizer=rmsprop", *overrides])
        _, _, model = build(run, torch.device("cpu"))
        return make_optimizer(model, run).param_groups[0]["alpha"]

    assert alpha() == 0.99  # torch's default
    assert alpha("train.rmsprop_alpha=0.9") == 0.9  # Arjovsky et al. 2016
