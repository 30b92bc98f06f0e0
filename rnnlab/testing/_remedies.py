"""The remedy contract suite."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest
import torch

from rnnlab.base import CellShape, LayerTrace, Remedy, TaskKind, TaskShape, remedy_problem
from rnnlab.run import SequenceModel, build_model
from rnnlab.testing._available import UNDER_TEST, installed_registry, needed, registry_with
from rnnlab.testing._learning import LEARNABLE, Learnable, learning_run
from rnnlab.testing._support import (
    Contract,
    missing_gradients,
    options,
    probes_match_autograd,
    short_run,
    unknown_key_rejected,
)


class RemedyContract(Contract):
    """What every :class:`rnnlab.Remedy` must do on a compatible cell (``cell_name``, looked up
    among the installed plugins). Set ``remedy_cls`` (and ``params``, ``cell_name``)."""

    remedy_cls: ClassVar[type[Remedy]]
    cell_name: ClassVar[str] = "rnn"
    cell_options: ClassVar[Mapping[str, Any]] = {}

    def cell_cls(self) -> Any:
        """The class of ``cell_name`` (the test is skipped, saying why, when it cannot load)."""
        return needed(installed_registry(), "cell", self.cell_name, "cell_name")

    def make_model(
        self, remedy: Remedy, layers: int = 1, kind: TaskKind = TaskKind.REGRESSION_LAST
    ) -> SequenceModel:
        cell_cls = self.cell_cls()
        torch.manual_seed(0)
        return build_model(
            cell_cls,
            cell_cls.Params.model_validate(dict(self.cell_options)),
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            layers=layers,
            output_size=2,
            kind=kind,
            remedies=[remedy],
        )

    def test_params_reject_unknown_keys(self) -> None:
        unknown_key_rejected(self.remedy_cls)

    def test_compatibility_follows_requires_and_conflicts(self) -> None:
        cell_cls: Any = self.cell_cls()
        registry = installed_registry()
        assert self.remedy_cls.requires <= cell_cls.capabilities
        assert self.remedy_cls.incompatibility(self.cell_name, cell_cls, [], 1) is None
        for name in registry.names("cell"):
            cell_cls = registry.get("cell", name)
            missing = self.remedy_cls.requires - cell_cls.capabilities
            for layers in (1, 2):
                reason = self.remedy_cls.incompatibility(name, cell_cls, [], layers)
                assert reason is None or (isinstance(reason, str) and reason.strip())
                assert reason is not None or not missing, f"{name} lacks {sorted(missing)}"
            for other in self.remedy_cls.conflicts:
                assert isinstance(self.remedy_cls.incompatibility(name, cell_cls, [other], 1), str)

    def test_check_draws_nothing_and_answers_the_same_twice(self) -> None:
        """``check`` runs for every grid point, in the coordinator and again in the worker: it
        must give one answer, and leave torch's random stream (the run's initial weights) alone
        (``cell.build()`` makes a throwaway cell without drawing from it)."""
        params = self.params if self.params is not None else self.remedy_cls.Params()
        registry, task = installed_registry(), TaskShape(Learnable())
        for name in registry.names("cell"):
            cls: Any = registry.get("cell", name)
            cell = CellShape(name, cls, cls.resolve_params(cls.Params(), task), 4, task)
            before = torch.random.get_rng_state()
            answers = {remedy_problem(self.remedy_cls, params, cell, [], 1, task) for _ in "ab"}
            assert torch.equal(torch.random.get_rng_state(), before), (
                f"check on cell {name!r} drew from torch's global random stream, which shifts "
                "the run's initial weights; build throwaway cells with cell.build()"
            )
            assert len(answers) == 1, f"check on cell {name!r} answered {answers}"
            (reason,) = answers
            assert reason is None or (isinstance(reason, str) and reason.strip()), reason

    @pytest.mark.parametrize("layers", [1, 2])
    def test_forward_backward_after_backward(self, layers: int) -> None:
        """Every parameter gets a gradient, and ``after_backward`` leaves finite gradients that
        are not all zero (read again after the call: a remedy may rebind ``p.grad``)."""
        remedy = self.remedy_cls(self.params)
        model = self.make_model(remedy, layers)
        x = torch.randn(self.steps, self.batch, self.input_size)
        for probe in (True, False):
            model.zero_grad(set_to_none=True)
            out, probes = model(x, probe=probe)
            out.square().mean().backward()
            params = list(model.parameters())
            assert torch.isfinite(out).all()
            assert all(z.grad is not None and torch.isfinite(z.grad).all() for z in probes)
            missing = missing_gradients(model, self.unused_parameters)
            assert not missing, f"probe={probe}: no gradient reaches {missing}"
            grads = [p.grad for p in params if p.grad is not None]
            assert all(torch.isfinite(g).all() for g in grads)
            norm = float(torch.nn.utils.get_total_norm(grads))
            metrics = remedy.after_backward(params, norm)
            assert isinstance(metrics, dict)
            assert all(isinstance(k, str) and isinstance(v, float) for k, v in metrics.items())
            after = [p.grad for p in params if p.grad is not None]  # re-read: p.grad may be new
            assert after and all(torch.isfinite(g).all() for g in after), (
                f"probe={probe}: after_backward left a non-finite gradient"
            )
            assert any(bool(g.any()) for g in after), "after_backward zeroed every gradient"
        model.eval()
        with torch.no_grad():
            assert torch.isfinite(model(x)[0]).all()

    @pytest.mark.parametrize("layers", [1, 2])
    def test_loss_term(self, layers: int) -> None:
        """``loss_term`` gives None or a finite scalar that backward carries to the weights;
        a remedy with ``needs_states`` gets one complete trace per layer."""
        remedy = self.remedy_cls(self.params)
        model = self.make_model(remedy, layers)
        x = torch.randn(self.steps, self.batch, self.input_size)
        traces: list[LayerTrace] | None = [] if remedy.needs_states else None
        out, _ = model(x, traces=traces)
        loss = out.square().mean()
        for trace in traces or []:
            assert len(trace.inputs) == len(trace.states) == len(trace.hidden) == self.steps
        term = remedy.loss_term(loss, traces or [])
        if term is None:
            return
        value, metrics = term
        assert value.dim() == 0 and torch.isfinite(value), value
        assert all(isinstance(k, str) and isinstance(v, float) for k, v in metrics.items())
        params = list(model.parameters())
        assert value.requires_grad, "the loss term does not depend on the weights (detached?)"
        own = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        assert any(g is not None and bool(g.any()) for g in own), (
            "the loss term's own gradient reaches no parameter (computed from detached tensors?)"
        )
        assert all(torch.isfinite(g).all() for g in own if g is not None)
        (loss + value).backward()
        grads = [p.grad for p in params if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)

    def test_steps_outside_the_loss(self) -> None:
        """``before_training`` and ``between_steps`` (default: nothing) return metrics of floats,
        report ``train/extra_steps`` as a whole number >= 0, leave finite weights, and do the
        same from the same weights, batches and seed (rnnlab seeds the stream for them)."""

        def hooks() -> tuple[list[dict[str, float]], list[torch.Tensor]]:
            remedy = self.remedy_cls(self.params)
            model = self.make_model(remedy)
            generator = torch.Generator().manual_seed(0)

            def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
                while True:
                    x = torch.randn(self.steps, self.batch, self.input_size, generator=generator)
                    yield x, torch.randn(self.batch, 2, generator=generator)

            stream = batches()
            torch.manual_seed(1)
            reports = [remedy.before_training(model, stream)]
            reports += [remedy.between_steps(done, model, stream) for done in (1, 2, 3)]
            return reports, [p.detach().clone() for p in model.parameters()]

        reports, weights = hooks()
        for metrics in reports:
            assert isinstance(metrics, dict)
            assert all(isinstance(k, str) and isinstance(v, float) for k, v in metrics.items())
            taken = metrics.get(Remedy.EXTRA_STEPS, 0.0)
            assert taken >= 0 and taken == int(taken), f"{Remedy.EXTRA_STEPS} = {taken}"
        assert all(torch.isfinite(w).all() for w in weights), "the hooks left non-finite weights"
        again, weights_again = hooks()
        assert again == reports, "the hooks reported other metrics from the same start"
        assert all(torch.equal(a, b) for a, b in zip(weights, weights_again, strict=True))

    @pytest.mark.parametrize("layers", [1, 2])
    def test_probes_equal_autograd(self, layers: int) -> None:
        model = self.make_model(self.remedy_cls(self.params), layers, TaskKind.CLASSIFY_EVERY)
        x = torch.randn(self.steps, self.batch, self.input_size, dtype=torch.float64)
        probes_match_autograd(model.double(), x, 1e-6)

    def test_trains(self) -> None:
        cell = {"name": self.cell_name, "hidden_size": 8, **self.cell_options}
        remedy = {"name": UNDER_TEST, **options(self.params, self.remedy_cls)}
        registry = registry_with("remedy", self.remedy_cls)
        needed(registry, "cell", self.cell_name, "cell_name")
        needed(registry, "dataset", self.dataset_name, "dataset_name")
        short_run(registry, {"name": self.dataset_name, **self.dataset_options}, cell, [remedy])

    def test_learns(self) -> None:
        cell = {"name": self.cell_name, "hidden_size": 8, **self.cell_options}
        remedy = {"name": UNDER_TEST, **options(self.params, self.remedy_cls)}
        registry = registry_with(
            "remedy", self.remedy_cls, also=[("dataset", LEARNABLE, Learnable)]
        )
        needed(registry, "cell", self.cell_name, "cell_name")
        learning_run(registry, cell, [remedy])
