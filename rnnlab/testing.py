"""Contract test suites that every cell, dataset and remedy passes, built-in or third-party.

A plugin's whole test is one subclass per class it registers (pytest collects the ``Test*``
subclasses; these bases have no ``Test`` prefix, so importing them collects nothing)::

    class TestMyCell(rnnlab.testing.CellContract):
        cell_cls = MyCell

Class attributes tune a suite (``params``, sizes, the cell or task used alongside). Each suite
ends with a short real training run in which the class is registered as ``"under-test"`` through
:func:`plugin_registering`, the path an installed plugin takes; the classes used alongside (the
``adding`` task, the ``rnn`` cell) come from the installed plugins' registry.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import torch
from pydantic import ValidationError
from torch import Tensor

import rnnlab
from rnnlab.base import Cell, Dataset, Params, Remedy, State, TaskKind
from rnnlab.model import SequenceModel, build_model, run_loop
from rnnlab.plugins import KINDS, Registry, make_plugin_manager
from rnnlab.tracking import NullTracker

if TYPE_CHECKING:
    from rnnlab.train import RunResult

UNDER_TEST = "under-test"
TINY_TRAIN: Mapping[str, Any] = {
    "steps": 4,
    "batch_size": 8,
    "probe_every": 2,
    "eval_every": 2,
    "log_every": 1,
    "lr": 0.01,
    "device": "cpu",
    "flush_denormal": False,  # no process-wide change in tests
}
TINY_ADDING: Mapping[str, Any] = {"seq_len": 10, "val_size": 32, "test_size": 32}


class _Plugin:
    def __repr__(self) -> str:
        return f"plugin_registering{self.__dict__.get('args')}"


def plugin_registering(kind: str, name: str, cls: type) -> object:
    """A plugin object whose ``register_<kind>s`` hook registers ``cls`` as ``name``.

    Example:
        >>> make_plugin_manager(extra=[("mine", plugin_registering("cell", "mine", MyCell))])
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")

    def register_one(register: Callable[[str, type], None]) -> None:
        register(name, cls)

    plugin = _Plugin()
    plugin.__dict__.update(args=(kind, name, cls), **{KINDS[kind]: rnnlab.hookimpl(register_one)})
    return plugin


@functools.cache
def installed_registry() -> Registry:
    """The registry of every installed plugin (built once per process)."""
    return make_plugin_manager(load=None, strict=False, trace=False).registry()


def registry_with(kind: str, cls: type, name: str = UNDER_TEST) -> Registry:
    """The installed plugins plus ``cls`` registered as ``name``; fails on a bad registration."""
    extra = [(name, plugin_registering(kind, name, cls))]
    plugins = make_plugin_manager(load=None, strict=False, trace=False, extra=extra)
    registry = plugins.registry()
    if plugins.infos[name].errors:
        pytest.fail(f"registering {cls.__qualname__}: {'; '.join(plugins.infos[name].errors)}")
    return registry


def short_run(
    registry: Registry,
    dataset: Mapping[str, Any],
    cell: Mapping[str, Any],
    remedies: Iterable[Mapping[str, Any]] = (),
) -> tuple[RunResult, NullTracker]:
    """Train a tiny config a few steps; check it completed and measured the gradient flow.
    All of it is the real path but writing artifacts (plots are most of a tiny run's time)."""
    from rnnlab.config import resolve
    from rnnlab.sources import Source
    from rnnlab.train import train

    data = {
        "name": "contract",
        "seed": 0,
        "dataset": dict(dataset),
        "cell": dict(cell),
        "remedies": [dict(r) for r in remedies],
        "train": dict(TINY_TRAIN),
    }
    tracker = NullTracker(keep_artifacts=False)
    result = train(resolve(Source(path=None, data=data), registry), tracker)
    assert result.outcome == "completed", result.message
    assert math.isfinite(result.metrics["val/loss"])
    ratios = tracker.history.get("grad/log10_ratio", [])
    assert ratios and all(math.isfinite(v) for _, v in ratios), ratios
    return result, tracker


def _options(params: Params | None, cls: Any) -> dict[str, Any]:
    return dict((params if params is not None else cls.Params()).model_dump())


def _close(a: Tensor, b: Tensor, tol: float, what: str) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=lambda m: f"{what}: {m}")


def _unknown_key_rejected(cls: Any) -> None:
    cls.Params()  # the defaults are valid
    with pytest.raises(ValidationError):
        cls.Params.model_validate({"no_such_option": 1})


class _Contract:
    params: ClassVar[Params | None] = None  # None: the class's default Params
    input_size: ClassVar[int] = 3  # sizes of the cells and batches the tests build
    hidden_size: ClassVar[int] = 5
    steps: ClassVar[int] = 6
    batch: ClassVar[int] = 4
    dataset_name: ClassVar[str] = "adding"  # the task of the training run (cells, remedies)
    dataset_options: ClassVar[Mapping[str, Any]] = TINY_ADDING

    @pytest.fixture(autouse=True)
    def _one_torch_thread(self) -> Iterator[None]:
        # fastest for tiny tensors; idle threads spinning on a busy 2-core machine made these
        # suites four times slower
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(threads)


class CellContract(_Contract):
    """What every :class:`rnnlab.Cell` must do. Set ``cell_cls`` (and ``params`` if needed)."""

    cell_cls: ClassVar[type[Cell]]
    tolerance: ClassVar[float] = 1e-5

    def make_cell(self, dtype: torch.dtype = torch.float32, seed: int = 0) -> Cell:
        torch.manual_seed(seed)
        return self.cell_cls(self.input_size, self.hidden_size, self.params).to(dtype)

    def inputs(self, dtype: torch.dtype = torch.float32) -> Tensor:
        g = torch.Generator().manual_seed(1)
        return torch.randn(self.steps, self.batch, self.input_size, generator=g).to(dtype)

    def start(self, cell: Cell, dtype: torch.dtype = torch.float32) -> State:
        """A non-zero initial state (positive, so that a relu cell passes a gradient)."""
        g = torch.Generator().manual_seed(2)
        return tuple(
            0.5 + torch.rand(s.shape, generator=g).to(dtype)
            for s in cell.init_state(self.batch, None, dtype)
        )

    def stepwise(self, cell: Cell, x: Tensor, state: State) -> tuple[Tensor, State]:
        """``forward`` called step by step: every h_t, and the final state."""
        hs = []
        for x_t in x.unbind(0):
            h, state = cell(x_t, state)
            hs.append(h)
        return torch.stack(hs), state

    def test_params_reject_unknown_keys(self) -> None:
        _unknown_key_rejected(self.cell_cls)

    def test_init_state_and_shapes(self) -> None:
        cell = self.make_cell()
        for dtype in (torch.float32, torch.float64):
            state = cell.init_state(self.batch, torch.device("cpu"), dtype)
            assert isinstance(state, tuple) and state[0].shape == (self.batch, self.hidden_size)
            assert all(s.dtype == dtype and s.device.type == "cpu" for s in state)
        h, state = cell(self.inputs()[0], cell.init_state(self.batch))
        assert h.shape == (self.batch, self.hidden_size)
        assert torch.equal(state[0], h), "state[0] must be the h_t that forward returns"
        weight = cell.recurrent_weight()
        assert weight is None or (weight.dim() == 2 and weight.shape[1] == self.hidden_size)

    def test_step_and_model_loop_match_forward(self) -> None:
        cell, x = self.make_cell(), self.inputs()
        ref = mine = self.start(cell)
        h, _ = cell.step(cell.project_inputs(x[0]), ref, 0)  # one input projected alone
        _close(h, cell(x[0], ref)[0], self.tolerance, "step on one projected input")
        for t, (x_t, u_t) in enumerate(zip(x, cell.project_inputs(x), strict=True)):
            h_ref, ref = cell(x_t, ref)
            h, mine = cell.step(u_t, mine, t)
            _close(h, h_ref, self.tolerance, f"step {t} of inputs projected at once")
        expected, _ = self.stepwise(cell, x, self.start(cell))  # the model's loop does the same
        _close(run_loop(cell, x, self.start(cell), None), expected, self.tolerance, "run_loop")

    def test_fused_path_matches_loop(self) -> None:
        cell, x = self.make_cell(), self.inputs()
        if not cell.has_fused:
            pytest.skip(f"{self.cell_cls.__name__} has no fused path")
        loop, last = self.stepwise(cell, x, self.start(cell))
        fused, fused_last = cell.forward_fused(x, self.start(cell))
        _close(fused, loop, self.tolerance, "fused outputs")
        for a, b in zip(fused_last, last, strict=True):
            _close(a, b, self.tolerance, "fused final state")
        params = list(cell.parameters())  # the same parameters, so the same gradients
        grads = zip(
            torch.autograd.grad(fused.square().sum(), params),
            torch.autograd.grad(loop.square().sum(), params),
            strict=True,
        )
        for a, b in grads:
            _close(a, b, self.tolerance, "fused gradients")

    def test_deterministic_under_manual_seed(self) -> None:
        a, b, x = self.make_cell(seed=3), self.make_cell(seed=3), self.inputs()
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
        assert torch.equal(run_loop(a, x, self.start(a), None), run_loop(b, x, self.start(b), None))

    def test_float64_and_gradient_reaches_initial_state(self) -> None:
        cell, x = self.make_cell(torch.float64), 0.1 * self.inputs(torch.float64)
        start = self.start(cell, torch.float64)
        h0 = start[0].clone().requires_grad_(True)
        out = run_loop(cell, x, (h0, *start[1:]), None)
        assert out.dtype == torch.float64 and torch.isfinite(out).all()
        if cell.has_fused:
            assert cell.forward_fused(x, start)[0].dtype == torch.float64
        (grad,) = torch.autograd.grad(out[-1].sum(), h0)  # d h_T / d h_0 through the loop
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, "no gradient from h_T to h_0"

    def test_trains(self) -> None:
        cell = {"name": UNDER_TEST, "hidden_size": 8, **_options(self.params, self.cell_cls)}
        short_run(
            registry_with("cell", self.cell_cls),
            {"name": self.dataset_name, **self.dataset_options},
            cell,
        )


class DatasetContract(_Contract):
    """What every :class:`rnnlab.Dataset` must do. Set ``dataset_cls``; a dataset that needs
    files overrides ``make_params`` and writes them into ``tmp_path``."""

    dataset_cls: ClassVar[type[Dataset]]
    eval_batch: ClassVar[int] = 64
    train_batches: ClassVar[int] = 25
    cell_name: ClassVar[str] = "rnn"

    def make_params(self, tmp_path: Path) -> Params | None:
        return self.params

    @pytest.fixture
    def dataset_params(self, tmp_path: Path) -> Params:
        params = self.make_params(tmp_path)
        return params if params is not None else self.dataset_cls.Params()

    def batches(self, ds: Dataset, split: str, n: int, size: int) -> list[tuple[Tensor, Tensor]]:
        return list(itertools.islice(ds.batches(split, size), n))

    def test_params_reject_unknown_keys(self) -> None:
        _unknown_key_rejected(self.dataset_cls)

    def test_sizes_label_and_batch_shapes(self, dataset_params: Params) -> None:
        ds = self.dataset_cls(dataset_params, 0)
        sizes = (ds.input_size, ds.output_size, ds.seq_len)
        assert all(isinstance(n, int) and n > 0 for n in sizes), sizes
        assert isinstance(ds.kind, TaskKind) and isinstance(ds.label(), str) and ds.label().strip()
        for split in ("train", "val", "test"):
            ((x, y),) = self.batches(ds, split, 1, self.batch)
            b = x.shape[1]
            assert x.shape == (ds.seq_len, b, ds.input_size) and x.is_floating_point(), split
            assert b == self.batch if split == "train" else 0 < b <= self.batch
            expected = {
                TaskKind.REGRESSION_LAST: (b, ds.output_size),
                TaskKind.CLASSIFY_LAST: (b,),
                TaskKind.CLASSIFY_EVERY: (ds.seq_len, b),
            }
            assert y.shape == expected[ds.kind], f"{split}: y is {tuple(y.shape)}"
            if ds.kind is TaskKind.REGRESSION_LAST:
                assert y.is_floating_point()
            else:
                assert y.dtype == torch.long and 0 <= int(y.min()) <= int(y.max()) < ds.output_size

    def test_train_is_endless_and_seeded(self, dataset_params: Params) -> None:
        a, b = (
            self.batches(
                self.dataset_cls(dataset_params, 5), "train", self.train_batches, self.batch
            )
            for _ in range(2)
        )
        assert len(a) == self.train_batches and all(x.shape[1] == self.batch for x, _ in a)
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb), "same seed, different batches"

    def test_val_is_fixed_per_seed_and_finite(self, dataset_params: Params) -> None:
        ds, limit = self.dataset_cls(dataset_params, 5), 10_000
        runs = [
            self.batches(d, "val", limit + 1, self.eval_batch)
            for d in (ds, ds, self.dataset_cls(dataset_params, 5))
        ]
        assert 0 < len(runs[0]) <= limit, "val must iterate once over a finite set"
        for other in runs[1:]:
            assert len(other) == len(runs[0])
            for (xa, ya), (xb, yb) in zip(runs[0], other, strict=True):
                assert torch.equal(xa, xb) and torch.equal(ya, yb), "val changed"
        assert all(torch.isfinite(x).all() and torch.isfinite(y.double()).all() for x, y in runs[0])

    def test_loss_and_accuracy_on_model_output(self, dataset_params: Params) -> None:
        ds = self.dataset_cls(dataset_params, 0)
        cell_cls: Any = installed_registry().get("cell", self.cell_name)
        torch.manual_seed(0)
        model = build_model(
            cell_cls,
            cell_cls.Params(),
            input_size=ds.input_size,
            hidden_size=5,
            layers=1,
            output_size=ds.output_size,
            kind=ds.kind,
        )
        ((x, y),) = self.batches(ds, "train", 1, self.batch)
        out, _ = model(x)
        loss, accuracy = ds.loss(out, y), ds.accuracy(out, y)
        assert loss.dim() == 0 and math.isfinite(loss.item())
        loss.backward()
        assert accuracy.dim() == 0 and 0.0 <= float(accuracy) <= 1.0
        if ds.kind is TaskKind.REGRESSION_LAST:
            perfect = y.to(out.dtype)
        else:  # confident logits on the right class
            perfect = 20.0 * torch.nn.functional.one_hot(y, ds.output_size).to(out.dtype)
        assert perfect.shape == out.shape
        assert float(ds.accuracy(perfect, y)) == 1.0 and float(ds.loss(perfect, y)) < 1e-3

    def test_trains(self, dataset_params: Params) -> None:
        dataset = {"name": UNDER_TEST, **dataset_params.model_dump()}
        short_run(
            registry_with("dataset", self.dataset_cls),
            dataset,
            {"name": self.cell_name, "hidden_size": 8},
        )


class RemedyContract(_Contract):
    """What every :class:`rnnlab.Remedy` must do on a compatible cell (``cell_name``, looked up
    among the installed plugins). Set ``remedy_cls`` (and ``params``, ``cell_name``)."""

    remedy_cls: ClassVar[type[Remedy]]
    cell_name: ClassVar[str] = "rnn"
    cell_options: ClassVar[Mapping[str, Any]] = {}

    def cell_cls(self) -> Any:
        return installed_registry().get("cell", self.cell_name)

    def make_model(self, remedy: Remedy, layers: int = 1) -> SequenceModel:
        cell_cls = self.cell_cls()
        torch.manual_seed(0)
        return build_model(
            cell_cls,
            cell_cls.Params.model_validate(dict(self.cell_options)),
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            layers=layers,
            output_size=2,
            kind=TaskKind.REGRESSION_LAST,
            remedies=[remedy],
        )

    def test_params_reject_unknown_keys(self) -> None:
        _unknown_key_rejected(self.remedy_cls)

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

    @pytest.mark.parametrize("layers", [1, 2])
    def test_forward_backward_after_backward(self, layers: int) -> None:
        remedy = self.remedy_cls(self.params)
        model = self.make_model(remedy, layers)
        x = torch.randn(self.steps, self.batch, self.input_size)
        for probe in (True, False):
            model.zero_grad()
            out, probes = model(x, probe=probe)
            out.square().mean().backward()
            params = list(model.parameters())
            grads = [p.grad for p in params if p.grad is not None]
            assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads)
            assert all(z.grad is not None and torch.isfinite(z.grad).all() for z in probes)
            norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
            metrics = remedy.after_backward(params, norm)
            assert isinstance(metrics, dict)
            assert all(isinstance(k, str) and isinstance(v, float) for k, v in metrics.items())
            assert all(torch.isfinite(g).all() for g in grads)
        model.eval()
        with torch.no_grad():
            assert torch.isfinite(model(x)[0]).all()

    def test_trains(self) -> None:
        cell = {"name": self.cell_name, "hidden_size": 8, **self.cell_options}
        remedy = {"name": UNDER_TEST, **_options(self.params, self.remedy_cls)}
        short_run(
            registry_with("remedy", self.remedy_cls),
            {"name": self.dataset_name, **self.dataset_options},
            cell,
            [remedy],
        )
