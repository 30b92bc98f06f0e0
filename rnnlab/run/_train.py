"""One training run: a flat loop with probes, remedies, evaluation and divergence detection.

``train`` knows nothing of Optuna: a sweep hands it a resolved run and, optionally, a callback that
may stop the run early (pruning).
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from rnnlab._names import (
    CLIPPED,
    COMPLETED,
    DIVERGED,
    DIVERGED_AT,
    FAILED,
    GLOBAL_NORM,
    OUTCOME,
    PARAM_NORM,
    PRUNED,
    TARGET_FLOW,
    TARGET_LOG10_RATIO,
    TEST,
    TRAIN_LOSS,
    VAL,
    VAL_ACCURACY,
)
from rnnlab.base import Dataset, LayerTrace, Remedy
from rnnlab.errors import RnnlabError, SetupError
from rnnlab.run._config import ResolvedRun
from rnnlab.run._devices import describe_device, resolve_device
from rnnlab.run._dynamics import SEQUENCES, DynamicsRecorder, scheduled
from rnnlab.run._evaluation import Selection, evaluate, nonfinite, weight_metrics
from rnnlab.run._model import SequenceModel, build_model
from rnnlab.run._optim import make_optimizer  # train.lr_groups: the optimizer's groups
from rnnlab.run._outside import OutsideSteps  # Remedy.before_training / between_steps
from rnnlab.run._probe import FlowRecorder, flow_metrics, target_gradients
from rnnlab.run._result import Progress, RunResult
from rnnlab.run._tracking import NullTracker, Tracker


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
        next(iter(dataset.batches(VAL, 1)), None)  # missing or malformed data: fail now
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


def param_metrics(names: list[str], norms: Sequence[Tensor]) -> dict[str, float]:
    """Each parameter's gradient norm before clipping (probed steps): ``grad/param/<name>``."""
    return {PARAM_NORM + name: float(norm) for name, norm in zip(names, norms, strict=True)}


def _diverged(step: int, why: str) -> RunResult:
    return RunResult(DIVERGED, step, diverged_at=step, message=f"diverged at step {step}: {why}")


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
        run: a fully validated config (:func:`rnnlab.load_run_config`).
        tracker: where to record (default: nothing is recorded).
        progress: called after every step.
        should_stop: called after each evaluation with ``(step, metrics)``; True prunes the run.

    Returns:
        A :class:`RunResult`; divergence and exceptions in training are outcomes, not raised
        (KeyboardInterrupt is recorded as KILLED and re-raised). Data and config problems raise
        before the tracker starts, so a bad config leaves no run behind.
    """
    from rnnlab.run import _artifacts as artifacts

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
    dynamics = None  # the spectra, on fixed validation sequences (rnnlab.run._dynamics)
    if t.dynamics_every != 0:
        x_dyn = next(iter(dataset.batches(VAL, SEQUENCES)))[0].to(device)
        dynamics = DynamicsRecorder(x_dyn, t.lyapunov_k)
    final_state: dict[str, Tensor] | None = None  # the last step's weights, for model.pt
    selection = Selection(t.select)
    batch = max(t.batch_size, 256)  # evaluation batches
    result = RunResult(COMPLETED, 0)
    started = time.perf_counter()
    last: dict[str, float] = {}
    interval = _Means()
    try:
        outside = OutsideSteps(remedies, model, dataset, t.batch_size, device, run.config.seed)
        if outside:  # the remedies' own steps (preflossing) come first: step 0 measures after
            outside.before(tracker)
        scores, bad = _held_out(model, dataset, VAL, batch, device, 0, tracker, last)
        if bad:  # before any update: the initialisation itself overflows
            result = _diverged(0, f"the {VAL} evaluation gave {bad}")
        else:
            selection.offer(model, 0, scores)
            if dynamics is not None:  # before any update
                tracker.log_metrics(dynamics.measure(model, 0), step=0)
        started = time.perf_counter()  # steps/s counts training only
        batches = dataset.batches("train", t.batch_size)
        for step in range(t.steps if result.outcome == COMPLETED else 0):
            probing = t.probe_every > 0 and (step % t.probe_every == 0 or step == t.steps - 1)
            x, y = next(batches)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            traces: list[LayerTrace] | None = [] if needs_states else None
            out, probes = model(x, probe=probing, traces=traces)
            loss = dataset.loss(out, y)
            # the target steps' loss alone, on probed steps only: no cost on the others
            targets = target_gradients(dataset.target_loss(out, y), probes) if probing else None
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
                result = _diverged(step, f"loss {loss_value}, grad norm {grad_norm}")
                tracker.log_metrics({DIVERGED_AT: step}, step=step)
                break
            metrics: dict[str, float] = {}
            if probing:  # before the update, like every other gradient metric of this step
                total, target = recorder.record(step, probes, targets)
                metrics.update(flow_metrics(total, target))
                metrics.update(param_metrics(names, norms))
                last.update(total[-1].as_metrics())  # the top layer's, for the summary
                last.update(target[-1].as_metrics(TARGET_FLOW))
            step_metrics = {TRAIN_LOSS: loss_value, GLOBAL_NORM: grad_norm, **term_metrics}
            clipped = 0.0  # a core metric: 1 when any remedy changed the gradients
            for remedy in remedies:  # clip after measuring, before the step
                reported = dict(remedy.after_backward(params, grad_norm))
                clipped = max(clipped, reported.pop(CLIPPED, 0.0))
                step_metrics.update(reported)
            step_metrics[CLIPPED] = clipped
            optimizer.step()
            model.constrain()
            # drop this step's graph now, not when the next step rebinds the names: the probed
            # graph and its probes' gradients stayed alive through the next step (peak RSS of a
            # probed rnn trial at T=1000: 727 -> 646 MB, benchmarks/memory.py)
            del out, loss, extra, probes, targets, traces, grads, norms
            interval.add(step_metrics)
            if probing or step % t.log_every == 0 or step == t.steps - 1:
                metrics.update(interval.take())
            if metrics:
                tracker.log_metrics(metrics, step=step)
            done = step + 1
            result.steps_done = done
            if outside and done < t.steps:  # interflossing: before the evaluation after `done`
                outside.between(done, tracker)
            if done % t.eval_every == 0 or done == t.steps:
                scores, bad = _held_out(model, dataset, VAL, batch, device, done, tracker, last)
                if bad:  # the update overflowed the weights: never "completed" with NaN
                    result = _diverged(
                        done, f"the {VAL} evaluation after {done} updates gave {bad}"
                    )
                    break
                selection.offer(model, done, scores)
                if should_stop is not None and should_stop(done, scores):
                    result = RunResult(PRUNED, done, message=f"pruned at step {done}")
                    break
            if (
                dynamics is not None
                and done < t.steps
                and scheduled(t.dynamics_every, done, t.steps)
            ):
                tracker.log_metrics(dynamics.measure(model, done), step=done)  # the end: below
            if progress is not None:
                elapsed = time.perf_counter() - started
                progress(
                    Progress(
                        done,
                        t.steps,
                        loss_value,
                        last.get(VAL_ACCURACY),
                        last.get(TARGET_LOG10_RATIO),
                        done / max(elapsed, 1e-9),
                    )
                )
        rest = interval.take()  # steps since the last logged one (pruned or diverged runs)
        if rest:
            tracker.log_metrics(rest, step=max(result.steps_done - 1, 0))
        done = result.steps_done
        if dynamics is not None and done > 0 and result.outcome in (COMPLETED, PRUNED):
            final = dynamics.measure(model, done)  # the weights after the last update
            last.update(final)  # the final spectrum, for the summary and the sweep's table
            tracker.log_metrics(final, step=done)
        if tracker.keeps_artifacts and t.select != "final":
            final_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if result.outcome == COMPLETED:  # the test split, once, on the selected weights
            chosen = selection.restore(model)
            _, bad = _held_out(model, dataset, TEST, batch, device, chosen, tracker, last)
            if bad:
                result = _diverged(t.steps, f"the {TEST} evaluation gave {bad}")
                result.steps_done = t.steps
            result.selected_step = chosen
        status = "FINISHED"
    except KeyboardInterrupt:
        tracker.set_tags({OUTCOME: FAILED})
        tracker.finish("KILLED")
        raise
    except Exception as exc:  # a crash inside training is a recorded outcome
        result = RunResult(
            FAILED,
            result.steps_done,
            message=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}",
        )
        status = "FAILED"
    result.seconds = time.perf_counter() - started
    result.metrics = dict(last)
    tracker.set_tags({OUTCOME: result.outcome})
    if tracker.keeps_artifacts:
        with artifacts.folder() as out:
            defer = getattr(tracker, "draws_figures", False)  # it draws the PNGs off the path
            artifacts.write(out, run, result, recorder, device_label, dynamics, defer)
            artifacts.save_model(out, run, final_state or model.state_dict(), result.steps_done)
            tracker.log_artifacts(out)
    tracker.finish(status)
    result.run_id = tracker.run_id
    result.where = tracker.describe()
    return result


def _held_out(
    model: SequenceModel,
    dataset: Dataset,
    split: str,
    batch: int,
    device: torch.device,
    step: int,
    tracker: Tracker,
    last: dict[str, float],
) -> tuple[dict[str, float], str | None]:
    """Evaluate ``split`` on the model after ``step`` updates, log it (val with the recurrent
    weights' spectra) and keep it in ``last``: the scores, and what was not finite (or None)."""
    scores = evaluate(model, dataset, split, batch, device)
    last.update(scores)
    bad = nonfinite(scores)
    extra = weight_metrics(model) if split == VAL else {}
    tracker.log_metrics({**scores, **extra, **({DIVERGED_AT: step} if bad else {})}, step=step)
    return scores, bad
