"""The seam for a remedy's optimisation steps outside the training loss (Remedy.before_training,
Remedy.between_steps; rnnlab/run/_outside.py), driven through the real training loop."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

import rnnlab
from rnnlab._names import EXTRA_STEPS, TRAIN_LOSS, VAL_LOSS
from rnnlab.base import Remedy
from rnnlab.run import NullTracker, OutsideSteps, load_run_config, train

RUN = """\
name: seam
seed: 3
dataset: {name: adding, seq_len: 10, val_size: 32}
cell: {name: rnn, hidden_size: 6}
remedies: [%s]
train: {steps: 7, batch_size: 8, lr: 0.01, eval_every: 3, probe_every: 0, log_every: 1,
        device: cpu}
"""


class Ordered(NullTracker):
    """A NullTracker that also keeps the order of its calls: (step, keys) each."""

    def __init__(self) -> None:
        super().__init__(keep_artifacts=False)
        self.calls: list[tuple[int, set[str]]] = []

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        super().log_metrics(metrics, step)
        self.calls.append((step, set(metrics)))


class Busy(Remedy):
    """Draws batches and random numbers in both hooks and takes no step; it records what it saw:
    the first batch, its draws, the ``done`` of each call and the weights at that moment."""

    seen: ClassVar[list[Any]] = []

    def before_training(self, model: nn.Module, batches: Any) -> dict[str, float]:
        x, _ = next(batches)
        type(self).seen.append(("before", x.clone(), torch.randn(3), _weights(model)))
        return {"busy/before": 1.0, self.EXTRA_STEPS: 2.0}

    def between_steps(self, done: int, model: nn.Module, batches: Any) -> dict[str, float]:
        next(batches)
        type(self).seen.append((done, None, torch.randn(3), _weights(model)))
        return {"busy/between": float(done), self.EXTRA_STEPS: 1.0} if done == 4 else {}


def _weights(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).clone()


def _run(write_config: Any, rnnlab_registry: Any, remedy: str) -> tuple[rnnlab.RunResult, Ordered]:
    registry = rnnlab_registry("remedy", "busy", Busy)
    tracker = Ordered()
    run = load_run_config(write_config(RUN % remedy), registry)
    return train(run, tracker), tracker


def test_the_hooks_run_before_step_0_and_between_steps(write_config, rnnlab_registry) -> None:
    Busy.seen.clear()
    result, tracker = _run(write_config, rnnlab_registry, "busy")
    assert result.outcome == "completed", result.message
    assert [s[0] for s in Busy.seen] == ["before", 1, 2, 3, 4, 5, 6]  # not after the last
    # before_training's metrics are the first thing logged, before the step-0 validation
    assert tracker.calls[0] == (0, {"busy/before", EXTRA_STEPS})
    assert VAL_LOSS in tracker.calls[1][1] and tracker.calls[1][0] == 0
    # between_steps(done=4): logged at step 4, the running total of the steps taken (2 + 1)
    assert tracker.history["busy/between"] == [(4, 4.0)]
    assert tracker.history[EXTRA_STEPS] == [(0, 2.0), (4, 3.0)]
    # between_steps(done) sees the weights after update `done`: they changed from call to call
    weights = [s[3] for s in Busy.seen]
    assert all(not torch.equal(a, b) for a, b in zip(weights[1:], weights[2:], strict=False))


def test_the_hooks_leave_training_as_it_was(write_config, rnnlab_registry) -> None:
    """A remedy that draws batches and random numbers, and takes no step, changes nothing the
    run measures: its batches come from an iterator of its own, its draws from a forked
    stream. The batch it sees first is training's first batch (the train split from its start);
    its draws are the same in a second run."""
    Busy.seen.clear()
    plain, plain_tracker = _run(write_config, rnnlab_registry, "")
    busy, busy_tracker = _run(write_config, rnnlab_registry, "busy")
    again, _ = _run(write_config, rnnlab_registry, "busy")
    assert plain.outcome == busy.outcome == again.outcome == "completed"
    for key in (TRAIN_LOSS, VAL_LOSS):
        assert busy_tracker.history[key] == plain_tracker.history[key], key
    first, second = Busy.seen[0], Busy.seen[7]
    assert first[0] == second[0] == "before"
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])
    run = load_run_config(write_config(RUN % ""), rnnlab_registry("remedy", "busy", Busy))
    x, _ = next(run.instantiate_dataset().batches("train", 8))
    assert torch.equal(first[1], x)


def test_the_random_stream_is_seeded_and_restored() -> None:
    class Draw(Remedy):
        def before_training(self, model: nn.Module, batches: Any) -> dict[str, float]:
            return {"draw": float(torch.rand(()))}

    class Silent(Remedy):
        pass

    model = rnnlab.SequenceModel.__new__(rnnlab.SequenceModel)  # never called by Draw
    nn.Module.__init__(model)
    assert not OutsideSteps([Silent()], model, None, 1, torch.device("cpu"), 0)  # type: ignore[arg-type]

    def draws(seed: int) -> float:
        tracker = NullTracker(keep_artifacts=False)
        outside = OutsideSteps([Draw()], model, None, 1, torch.device("cpu"), seed)  # type: ignore[arg-type]
        torch.manual_seed(123)
        state = torch.random.get_rng_state()
        outside.before(tracker)
        assert torch.equal(torch.random.get_rng_state(), state), "the global stream moved"
        return tracker.history["draw"][0][1]

    assert draws(0) == draws(0) != draws(1)
