"""The target curve: the gradient of the task's target steps' loss alone (issue 14, item 2)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

import rnnlab
from rnnlab.base import Dataset, TaskKind
from rnnlab.plugins import make_plugin_manager
from rnnlab.run import NullTracker, build, load_run_config, train
from rnnlab.testing import plugin_registering

COPY = """\
name: target
seed: 0
dataset: {name: copy, seq_len: 20, val_size: 32, test_size: 32}
cell: {name: rnn, hidden_size: 16}
train: {steps: 3, batch_size: 8, lr: 0.01, eval_every: 3, probe_every: 2, log_every: 1}
"""


class Keeping(NullTracker):
    """A NullTracker that also keeps the gradient-flow arrays the run wrote."""

    flow: dict[str, np.ndarray]

    def log_artifacts(self, folder: Path) -> None:
        super().log_artifacts(folder)
        data = np.load(io.BytesIO((folder / "gradient_flow.npz").read_bytes()))
        self.flow = {k: data[k] for k in data.files}


def _train(write_config, registry, text: str, overrides=()) -> tuple[rnnlab.RunResult, Keeping]:
    tracker = Keeping()
    return train(load_run_config(write_config(text), registry, list(overrides)), tracker), tracker


def test_copy_target_curve_is_the_gradient_of_the_recall_steps_loss(write_config, registry) -> None:
    """Recomputed independently: the same weights and first batch, the recall steps'
    cross-entropy summed and divided by every step of every sequence, its autograd gradient."""
    result, tracker = _train(write_config, registry, COPY)
    assert result.outcome == "completed"
    run = load_run_config(write_config(COPY), registry)
    torch.manual_seed(run.config.seed)
    dataset, _, model = build(run, torch.device("cpu"))
    x, y = next(dataset.batches("train", 8))
    out, probes = model(x, probe=True)
    steps, batch = y.shape
    recall = torch.nn.functional.cross_entropy(
        out[-10:].reshape(-1, 10), y[-10:].reshape(-1), reduction="sum"
    ) / (steps * batch)
    (grad,) = torch.autograd.grad(recall, probes)
    expected = grad.double().norm(dim=-1).mean(dim=1).numpy()
    flow = tracker.flow
    assert flow["target_norms"].shape == flow["norms"].shape == (2, 1, 40)  # probes at 0 and 2
    np.testing.assert_allclose(flow["target_norms"][0, 0], expected, rtol=1e-5, atol=1e-30)
    # the total curve stays flat while the recall signal vanishes (MEASURED.md, copy T=50)
    h = tracker.history
    total, target = h["grad/log10_ratio"][0][1], h["grad/target/log10_ratio"][0][1]
    assert abs(total) < 1.0 and target < total - 3.0, (total, target)
    assert result.metrics["grad/target/log10_ratio"] == h["grad/target/log10_ratio"][-1][1]


def test_the_target_loss_is_a_share_of_the_loss(registry) -> None:
    """target + rest = loss, for copy (the recall steps) and chars (the window's last step)."""
    for name, options, picked in (("copy", {"seq_len": 5}, slice(-10, None)), ("chars", {}, -1)):
        cls = registry.get("dataset", name)
        dataset = cls(cls.Params(**options), 0)
        x, y = next(dataset.batches("train", 4))
        out = torch.randn(*y.shape, dataset.output_size)
        ce = torch.nn.functional.cross_entropy(
            out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="none"
        ).reshape(y.shape)
        target = dataset.target_loss(out, y)
        assert target is not None
        assert float(target) == pytest.approx(float(ce[picked].sum() / ce.numel()), rel=1e-5)
        assert float(target) < float(dataset.loss(out, y))


class EveryStep(Dataset):
    """A third-party every-step task that declares no target: its target is the last step."""

    kind = TaskKind.CLASSIFY_EVERY

    def __init__(self, params: rnnlab.Params | None = None, seed: int = 0) -> None:
        super().__init__(params, seed)
        self.input_size, self.output_size, self.seq_len = 3, 3, 6

    def batches(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        g = torch.Generator().manual_seed(self.seed + len(split))
        while True:
            y = torch.randint(0, 3, (self.seq_len, batch_size), generator=g)
            yield torch.nn.functional.one_hot(y, 3).float(), y
            if split != "train":
                return


class Everything(EveryStep):
    """Declares every step as its target: the target loss is the whole loss."""

    def target_steps(self) -> slice:
        return slice(None)


def test_a_dataset_that_declares_nothing_has_the_last_step_as_its_target() -> None:
    out = torch.randn(6, 4, 3)
    y = torch.randint(0, 3, (6, 4))
    target = EveryStep().target_loss(out, y)
    last = torch.nn.functional.cross_entropy(out[-1], y[-1]) / 6
    assert target is not None and float(target) == pytest.approx(float(last))
    assert Everything().target_loss(out, y) is None  # all steps: the loss itself

    class Nothing(EveryStep):
        def target_steps(self) -> slice:
            return slice(0, 0)

    with pytest.raises(
        ValueError, match=r"Nothing.target_steps\(\) = slice\(0, 0, None\) selects none"
    ):
        Nothing().target_loss(out, y)


@pytest.mark.parametrize(
    ("cls", "same"), [(EveryStep, False), (Everything, True)], ids=["default", "every-step"]
)
def test_third_party_datasets_record_the_target_curve(write_config, cls, same) -> None:
    registry = make_plugin_manager(
        load=None, extra=[("tp", plugin_registering("dataset", "tp", cls))]
    ).registry()
    text = COPY.replace("name: copy, seq_len: 20, val_size: 32, test_size: 32", "name: tp")
    result, tracker = _train(write_config, registry, text)
    assert result.outcome == "completed"
    equal = np.array_equal(tracker.flow["target_norms"], tracker.flow["norms"])
    assert equal is same
    assert "grad/target/log10_ratio" in tracker.history


def test_last_step_tasks_record_the_same_curve_without_an_extra_backward(
    write_config, registry, monkeypatch
) -> None:
    calls: list[int] = []
    real = torch.autograd.grad

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting)
    text = COPY.replace("copy, seq_len: 20", "adding, seq_len: 12")
    _, tracker = _train(write_config, registry, text, ["model.layers=2"])
    assert not calls  # the target loss is the loss: nothing extra ran
    np.testing.assert_array_equal(tracker.flow["target_norms"], tracker.flow["norms"])
    h = tracker.history
    for key in ("log10_ratio", "decay_rate", "steps_in_past", "underflow"):
        for suffix in ("", "/layer0"):  # top layer plain, the lower one suffixed
            assert h[f"grad/target/{key}{suffix}"] == h[f"grad/{key}{suffix}"], key
    _, copy = _train(write_config, registry, COPY)
    assert len(calls) == 2  # copy: one autograd.grad per probed step (steps 0 and 2)
    assert not np.array_equal(copy.flow["target_norms"], copy.flow["norms"])


def test_the_target_curve_has_its_own_figure_where_it_differs(write_config, registry) -> None:
    _, tracker = _train(write_config, registry, COPY)
    assert "gradient_flow_target.png" in tracker.artifacts
    _, adding = _train(write_config, registry, COPY.replace("copy, seq_len: 20", "adding"))
    assert "gradient_flow_target.png" not in adding.artifacts  # it would be gradient_flow.png
    assert "gradient_flow.png" in adding.artifacts


def test_every_layer_has_its_target_curve(write_config, registry) -> None:
    _, tracker = _train(write_config, registry, COPY, ["model.layers=2"])
    assert tracker.flow["target_norms"].shape == (2, 2, 40)
    h = tracker.history
    for key in ("grad/target/log10_ratio", "grad/target/log10_ratio/layer0"):
        assert [s for s, _ in h[key]] == [0, 2], key
    # the lower layer's target curve is its own, not the top layer's
    assert not np.array_equal(
        tracker.flow["target_norms"][:, 0], tracker.flow["target_norms"][:, 1]
    )


@pytest.mark.parametrize("name", ["adding", "digits", "forecast"])
def test_last_step_builtins_have_their_whole_loss_as_target(registry, name: str) -> None:
    cls = registry.get("dataset", name)
    dataset = cls(cls.Params(), 0)
    x, y = next(dataset.batches("val", 4))
    out = torch.randn(4, dataset.output_size)
    assert dataset.target_loss(out, y) is None  # no extra backward on their probed steps
