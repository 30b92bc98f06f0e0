"""Helpers the contract suites share: registering a class for one test, a tiny real run."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import torch
from pydantic import ValidationError
from torch import Tensor

import rnnlab
from rnnlab.base import Params
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


def options(params: Params | None, cls: Any) -> dict[str, Any]:
    return dict((params if params is not None else cls.Params()).model_dump())


def close(a: Tensor, b: Tensor, tol: float, what: str) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=lambda m: f"{what}: {m}")


def unknown_key_rejected(cls: Any) -> None:
    cls.Params()  # the defaults are valid
    with pytest.raises(ValidationError):
        cls.Params.model_validate({"no_such_option": 1})


class Contract:
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
