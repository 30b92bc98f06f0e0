"""One training run: a flat loop with probes, remedies, evaluation and divergence detection.

``train`` knows nothing of Optuna: a sweep hands it a resolved run and, optionally, a callback that
may stop the run early (pruning).
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from rnnlab.base import Dataset, LayerTrace, Remedy
from rnnlab.config import ResolvedRun
from rnnlab.devices import describe_device, resolve_device
from rnnlab.errors import RnnlabError, SetupError
from rnnlab.model import SequenceModel, build_model
from rnnlab.probe import FlowRecorder, FlowSummary
from rnnlab.tracking import NullTracker, Tracker

OUTCOMES = ("completed", "diverged", "pruned", "failed", "incompatible")


@dataclass
class Progress:
    """What a progress display shows after each step."""

    step: int
    steps: int
    loss: float
    accuracy: float | None
    log10_ratio: float | None
    steps_per_s: float


@dataclass
class RunResult:
    """How a run ended. ``outcome`` is one of :data:`OUTCOMES`."""

    outcome: str
    steps_done: int
    message: str = ""
    diverged_at: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    where: str = ""
    seconds: float = 0.0


class _Means:
    """Per-step scalars summed since the last logged step; logged as their means."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def take(self) -> dict[str, float]:
        means = {k: v / self.count for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


def prepare_process(flush_denormal: bool, threads: int | None) -> None:
    """Process-wide torch settings; call first, before any parallel op (MEASURED.md: flushing set
    late only halves the cost of denormals instead of removing it)."""
    if flush_denormal:
        torch.set_flush_denormal(True)
    if threads:
        torch.set_num_threads(threads)


def build(run: ResolvedRun, device: torch.device) -> tuple[Dataset, list[Remedy], SequenceModel]:
    """Instantiate the plugins of ``run``; a plugin that fails here is named in the error."""
    stage = f"dataset {run.dataset.name!r} ({run.dataset.cls.__module__})"
    try:
        dataset = run.instantiate_dataset()
        next(iter(dataset.batches("val", 1)), None)  # missing or malformed data: fail now
        stage = "remedies " + ", ".join(f"{r.name!r} ({r.cls.__module__})" for r in run.remedies)
        remedies = run.instantiate_remedies()
        stage = f"cell {run.cell.name!r} ({run.cell.cls.__module__}) with its remedies"
        model = build_model(
            run.cell_cls,
            run.cell.params,
            input_size=dataset.input_size,
            hidden_size=run.config.cell.hidden_size,
            layers=run.config.model.layers,
            output_size=dataset.output_size,
            kind=dataset.kind,
            remedies=remedies,
        ).to(device)
    except RnnlabError:
        raise
    except Exception as exc:
        raise SetupError(f"{stage} failed to build: {type(exc).__name__}: {exc}") from exc
    return dataset, remedies, model


def make_optimizer(model: SequenceModel, run: ResolvedRun) -> torch.optim.Optimizer:
    t = run.config.train
    params = list(model.parameters())
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if t.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay
        )
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


@torch.no_grad()
def evaluate(
    model: SequenceModel, dataset: Dataset, split: str, batch_size: int, device: torch.device
) -> dict[str, float]:
    """Mean loss and accuracy over a whole held-out split."""
    model.eval()
    loss = accuracy = 0.0
    count = 0
    for x, y in dataset.batches(split, batch_size):
        x, y = x.to(device), y.to(device)
        out, _ = model(x)
        n = x.shape[1]
        loss += float(dataset.loss(out, y)) * n
        accuracy += float(dataset.accuracy(out, y)) * n
        count += n
    model.train()
    scores = {f"{split}/loss": loss / count, f"{split}/accuracy": accuracy / count}
    return scores | dataset.derived_metrics(scores)


def _layer_key(prefix: str, layer: int, layers: int) -> str:
    # the top layer (under the loss) is the plain key; lower layers get a suffix
    return prefix if layer == layers - 1 else f"{prefix}/layer{layer}"


def probe_metrics(
    summaries: list[FlowSummary], names: list[str], norms: Sequence[Tensor]
) -> dict[str, float]:
    """Flow summaries and per-parameter gradient norms (probed steps)."""
    layers = len(summaries)
    metrics: dict[str, float] = {}
    for layer, summary in enumerate(summaries):
        metrics.update(summary.as_metrics(suffix="" if layer == layers - 1 else f"/layer{layer}"))
    for name, norm in zip(names, norms, strict=True):
        metrics[f"grad/param/{name}"] = float(norm)
    return metrics


def weight_metrics(model: SequenceModel) -> dict[str, float]:
    """Spectral norm (and radius, when square) of every layer's recurrent weight.

    Taken with each evaluation, not on probed steps: they describe the weights, need no probe,
    and the eigenvalues cost as much as the probes on a small rnn step (benchmarks/probing.py)."""
    layers = len(model.cells)
    metrics: dict[str, float] = {}
    with torch.no_grad():
        for layer, cell in enumerate(model.cells):
            weight = cell.recurrent_weight()  # type: ignore[operator]
            if weight is None:
                continue
            weight = weight.detach().float()
            metrics[_layer_key("weights/spectral_norm", layer, layers)] = float(
                torch.linalg.matrix_norm(weight, ord=2)
            )
            if weight.shape[0] == weight.shape[1]:
                radius = torch.linalg.eigvals(weight.cpu()).abs().max()
                metrics[_layer_key("weights/spectral_radius", layer, layers)] = float(radius)
    return metrics


def loss_terms(
    remedies: Sequence[Remedy], loss: Tensor, traces: Sequence[LayerTrace]
) -> tuple[Tensor | None, dict[str, float]]:
    """The sum of the remedies' loss terms (None when no remedy adds one) and their metrics."""
    total: Tensor | None = None
    metrics: dict[str, float] = {}
    for remedy in remedies:
        term = remedy.loss_term(loss, traces)
        if term is None:
            continue
        value, values = term
        total = value if total is None else total + value
        metrics.update(values)
    return total, metrics


def _take_grad(z: Tensor) -> Tensor:
    """A stand-in for probe ``z`` holding its gradient so far; later backwards leave it alone."""
    taken = z.detach()  # same (zero) storage, a tensor of its own
    taken.grad = z.grad
    z.grad = None
    return taken


def train(
    run: ResolvedRun,
    tracker: Tracker | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[int, dict[str, float]], bool] | None = None,
) -> RunResult:
    """Train one configuration and record it.

    Args:
        run: a fully validated config (:func:`rnnlab.config.load_run_config`).
        tracker: where to record (default: nothing is recorded).
        progress: called after every step.
        should_stop: called after each evaluation with ``(step, metrics)``; True prunes the run.

    Returns:
        A :class:`RunResult`; divergence and exceptions in training are outcomes, not raised
        (KeyboardInterrupt is recorded as KILLED and re-raised). Data and config problems raise
        before the tracker starts, so a bad config leaves no run behind.
    """
    from rnnlab import artifacts

    t = run.config.train
    prepare_process(t.flush_denormal, t.threads)
    torch.manual_seed(run.config.seed)
    device = resolve_device(t.device)
    dataset, remedies, model = build(run, device)
    optimizer = make_optimizer(model, run)
    names = [n for n, _ in model.named_parameters()]
    params = list(model.parameters())
    tracker = tracker or NullTracker()
    device_label = describe_device(device)
    tracker.start(
        run.name,
        artifacts.run_name(run, dataset),
        artifacts.tags(run, device_label),
        run.flat_params(),
    )

    needs_states = any(remedy.needs_states for remedy in remedies)
    recorder = FlowRecorder()
    result = RunResult("completed", 0)
    started = time.perf_counter()
    last: dict[str, float] = {}
    interval = _Means()
    try:
        last.update(evaluate(model, dataset, "val", max(t.batch_size, 256), device))
        tracker.log_metrics({**last, **weight_metrics(model)}, step=0)
        started = time.perf_counter()  # steps/s counts training only
        batches = dataset.batches("train", t.batch_size)
        for step in range(t.steps):
            probing = t.probe_every > 0 and (step % t.probe_every == 0 or step == t.steps - 1)
            x, y = next(batches)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            traces: list[LayerTrace] | None = [] if needs_states else None
            out, probes = model(x, probe=probing, traces=traces)
            loss = dataset.loss(out, y)
            extra, term_metrics = loss_terms(remedies, loss, traces or [])
            optimizer.zero_grad(set_to_none=True)
            if extra is None:
                loss.backward()
            else:  # the probes measure the task's loss alone; the terms add to the gradients
                loss.backward(retain_graph=True)
                probes = [_take_grad(z) for z in probes]
                extra.backward()
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            norms = torch._foreach_norm(grads)
            grad_norm = float(torch.linalg.vector_norm(torch.stack(norms)))
            loss_value = loss.detach().item()
            if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
                result = RunResult(
                    "diverged",
                    step,
                    diverged_at=step,
                    message=f"diverged at step {step}: loss {loss_value}, grad norm {grad_norm}",
                )
                tracker.log_metrics({"diverged_at": step}, step=step)
                break
            metrics: dict[str, float] = {}
            if probing:  # before the update, like every other gradient metric of this step
                summaries = recorder.record(step, probes)
                metrics.update(probe_metrics(summaries, names, norms))
                last.update(summaries[-1].as_metrics())  # the top layer's, for the summary
            step_metrics = {"train/loss": loss_value, "grad/global_norm": grad_norm}
            step_metrics.update(term_metrics)
            step_metrics["grad/clipped"] = 0.0
            for remedy in remedies:  # clip after measuring, before the step
                step_metrics.update(remedy.after_backward(params, grad_norm))
            optimizer.step()
            model.constrain()
            # drop this step's graph now, not when the next step rebinds the names: the probed
            # graph and its probes' gradients stayed alive through the next step (peak RSS of a
            # probed rnn trial at T=1000: 727 -> 646 MB, benchmarks/memory.py)
            del out, loss, extra, probes, traces, grads, norms
            interval.add(step_metrics)
            if probing or step % t.log_every == 0 or step == t.steps - 1:
                metrics.update(interval.take())
            if metrics:
                tracker.log_metrics(metrics, step=step)
            done = step + 1
            result.steps_done = done
            if done % t.eval_every == 0 or done == t.steps:
                scores = evaluate(model, dataset, "val", max(t.batch_size, 256), device)
                last.update(scores)
                tracker.log_metrics({**scores, **weight_metrics(model)}, step=done)
                if should_stop is not None and should_stop(done, scores):
                    result = RunResult("pruned", done, message=f"pruned at step {done}")
                    break
            if progress is not None:
                elapsed = time.perf_counter() - started
                progress(
                    Progress(
                        done,
                        t.steps,
                        loss_value,
                        last.get("val/accuracy"),
                        last.get("grad/log10_ratio"),
                        done / max(elapsed, 1e-9),
                    )
                )
        rest = interval.take()  # steps since the last logged one (pruned or diverged runs)
        if rest:
            tracker.log_metrics(rest, step=max(result.steps_done - 1, 0))
        status = "FINISHED"
    except KeyboardInterrupt:
        tracker.set_tags({"rnnlab.outcome": "failed"})
        tracker.finish("KILLED")
        raise
    except Exception as exc:  # a crash inside training is a recorded outcome
        result = RunResult(
            "failed",
            result.steps_done,
            message=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}",
        )
        status = "FAILED"
    result.seconds = time.perf_counter() - started
    result.metrics = dict(last)
    tracker.set_tags({"rnnlab.outcome": result.outcome})
    if tracker.keeps_artifacts:
        with artifacts.folder() as out:
            artifacts.write(out, run, result, recorder, device_label)
            tracker.log_artifacts(out)
    tracker.finish(status)
    result.run_id = tracker.run_id
    result.where = tracker.describe()
    return result


def summary_line(result: RunResult) -> str:
    shown: dict[str, Any] = {
        k: result.metrics[k]
        for k in ("val/loss", "val/accuracy", "grad/log10_ratio")
        if k in result.metrics
    }
    parts = ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
    steps = f"{result.steps_done} step" + ("" if result.steps_done == 1 else "s")
    line = f"{result.outcome} after {steps} ({result.seconds:.1f} s)"
    return f"{line}: {parts}" if parts else line
