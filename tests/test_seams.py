"""The seams through which plugins reach the model and the task: ``Remedy.after_layer`` (with
modules registered in ``apply_model``), ``Remedy.check``, ``Cell.init_layer``, and
``Cell.resolve_params`` with a lazily built ``TaskShape``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
import torch
from rnnlab_cells.twins import ElmanCell, LSTMCell
from rnnlab_tasks.adding import AddingProblem
from torch import Tensor, nn

import rnnlab
from rnnlab.base import Cell, Remedy, TaskKind, TaskShape
from rnnlab.errors import DataError, IncompatibleError
from rnnlab.run import SequenceModel, Source, build_model, resolve, run_loop
from rnnlab.testing import installed_registry, registry_with

T, B, I, H = 5, 3, 2, 4  # noqa: E741 - the usual names of the sizes


class Scaled(Remedy):
    """A remedy with a parameter of its own: every layer's output times a learned scale."""

    stage: ClassVar[int] = 2

    def __init__(self, params: rnnlab.Params | None = None) -> None:
        super().__init__(params)
        self.calls: list[tuple[int, Tensor, Tensor]] = []

    def apply_model(self, model: SequenceModel) -> None:
        self.scale = nn.Parameter(torch.tensor(2.0))
        holder = nn.Module()
        holder.scale = self.scale
        model.add_module("scaled", holder)

    def after_layer(self, layer: int, inputs: Tensor, outputs: Tensor) -> Tensor:
        self.calls.append((layer, inputs, outputs))
        return self.scale * outputs


class Shifted(Remedy):
    stage: ClassVar[int] = 1  # before Scaled, whatever the config's order

    def after_layer(self, layer: int, inputs: Tensor, outputs: Tensor) -> Tensor:
        return outputs + 1.0


def model_with(cell_cls: type[Cell], *remedies: Remedy, layers: int = 2) -> SequenceModel:
    torch.manual_seed(0)
    return build_model(
        cell_cls,
        cell_cls.Params(),
        input_size=I,
        hidden_size=H,
        layers=layers,
        output_size=1,
        kind=TaskKind.REGRESSION_LAST,
        remedies=remedies,
    )


@pytest.mark.parametrize("probe", [False, True])
@pytest.mark.parametrize("cls", [ElmanCell, LSTMCell])
def test_after_layer_sees_every_layer_and_feeds_the_next(cls: type[Cell], probe: bool) -> None:
    scaled = Scaled()
    model = model_with(cls, scaled, Shifted())
    lower, upper = model.layers()
    assert cls is not ElmanCell or lower.has_fused  # the fused path gets the seam too
    x = torch.randn(T, B, I)
    out, _ = model(x, probe=probe)
    h1 = 2.0 * (run_loop(lower, x, lower.init_state(B), None) + 1.0)  # stage order: +1, then x2
    h2 = 2.0 * (run_loop(upper, h1, upper.init_state(B), None) + 1.0)
    torch.testing.assert_close(out, model.head(h2[-1]))
    assert [c[0] for c in scaled.calls] == [0, 1]
    assert scaled.calls[0][1] is x
    torch.testing.assert_close(scaled.calls[1][1], h1)  # what layer 1 received
    names = dict(model.named_parameters())
    assert names["scaled.scale"] is scaled.scale  # trained, moved and saved with the model
    out.sum().backward()
    assert scaled.scale.grad is not None and "scaled.scale" in model.state_dict()


def test_init_layer_is_told_the_depth_before_remedies_act() -> None:
    seen: list[tuple[int, int]] = []

    class Deep(ElmanCell):
        def init_layer(self, layer: int, layers: int) -> None:
            seen.append((layer, layers))

    model_with(Deep, layers=3)
    assert seen == [(0, 3), (1, 3), (2, 3)]


# --- the task, resolved lazily ---------------------------------------------------------------


def test_task_shape_reads_the_dataset_only_when_asked() -> None:
    made: list[int] = []

    def make() -> AddingProblem:
        made.append(1)
        return AddingProblem(AddingProblem.Params(seq_len=30))

    task = TaskShape(make)
    assert made == []
    assert (task.seq_len, task.input_size, task.output_size) == (30, 2, 1)
    assert task.kind is TaskKind.REGRESSION_LAST and made == [1]  # built once
    assert TaskShape(AddingProblem()).seq_len == 100


def test_resolving_a_config_builds_the_dataset_only_for_a_plugin_that_asks(
    tmp_path: Any,
) -> None:
    """A config whose plugins need no task size resolves without its data (a sweep over MNIST
    can be planned on a machine without the files); ``auto`` builds the dataset to read T."""
    mnist = {"name": "mnist", "root": str(tmp_path)}
    for cell in ({"name": "rnn"}, {"name": "indrnn"}):
        data = {"dataset": mnist, "cell": cell, "remedies": ["layernorm"]}
        resolve(Source(path=None, data=data), installed_registry())
    data = {"dataset": mnist, "cell": {"name": "indrnn", "recurrent_max": "auto"}}
    with pytest.raises(DataError, match="MNIST files missing"):
        resolve(Source(path=None, data=data), installed_registry())


class Picky(Remedy):
    """Refuses long sequences when asked to: compatibility that depends on an option and on
    the task, through ``check``."""

    class Params(rnnlab.Params):
        max_len: int | None = None

    @classmethod
    def check(
        cls,
        params: rnnlab.Params,
        cell_name: str,
        cell_cls: type[Cell],
        remedies: Sequence[str],
        layers: int,
        task: rnnlab.TaskShape,
    ) -> str | None:
        limit = params.max_len  # type: ignore[attr-defined]
        if limit is not None and task.seq_len > limit:
            return f"sequences longer than {limit} steps; raise max_len"
        return super().check(params, cell_name, cell_cls, remedies, layers, task)


def test_check_sees_the_options_and_the_task() -> None:
    registry = registry_with("remedy", Picky, name="picky")

    def run(seq_len: int, remedy: dict[str, Any]) -> Any:
        data = {"dataset": {"name": "adding", "seq_len": seq_len}, "cell": {"name": "rnn"}}
        data["remedies"] = [{"name": "picky", **remedy}]
        return resolve(Source(path=None, data=data), registry)

    run(50, {"max_len": 60})
    run(100, {})
    with pytest.raises(IncompatibleError) as info:
        run(100, {"max_len": 60})
    assert str(info.value).endswith(
        "remedy 'picky' is incompatible with cell 'rnn' on dataset 'adding': sequences longer "
        "than 60 steps; raise max_len"
    )


# --- cell declarations a third-party cell can make -------------------------------------------


class Leaky(Cell):
    """A third-party cell: h_t = h_{t-1} + 0.5 * (tanh(W x_t + U h_{t-1}) - h_{t-1})."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"normalize_outputs"})
    additive: ClassVar[bool] = True

    def __init__(self, input_size: int, hidden_size: int, params: Any = None) -> None:
        super().__init__(input_size, hidden_size, params)
        self.w = nn.Linear(input_size + hidden_size, hidden_size)

    def forward(self, x_t: Tensor, state: Any) -> tuple[Tensor, Any]:
        h = state[0]
        h = h + 0.5 * (torch.tanh(self.w(torch.cat((x_t, h), -1))) - h)
        return h, (h,)


def test_a_third_party_cell_declares_between_layer_norms_and_an_additive_update() -> None:
    from rnnlab_remedies.norm import BatchNormRemedy, FrameBatchNorm

    model = model_with(Leaky, BatchNormRemedy())
    assert [type(m) for m in model.between_layer_norms.values()] == [FrameBatchNorm] * 2  # type: ignore[operator]
    registry = registry_with("cell", Leaky, name="leaky")
    data: dict[str, Any] = {"dataset": {"name": "adding"}, "cell": {"name": "leaky"}}
    resolve(Source(path=None, data={**data, "remedies": ["layernorm"]}), registry)
    with pytest.raises(IncompatibleError, match="cell 'leaky' declares additive"):
        resolve(Source(path=None, data={**data, "remedies": ["residual"]}), registry)
