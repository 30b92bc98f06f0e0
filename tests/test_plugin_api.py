"""What a plugin sees of rnnlab since issue 16: names of ``rnnlab`` only, capabilities checked at
registration, ``grad/clipped`` as a core metric, and the opt-in dataset template."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from pydantic import Field
from rnnlab_cells.twins import ElmanCell
from torch import Tensor

import rnnlab
from rnnlab._names import KINDS
from rnnlab.commands import plan_plugin, render
from rnnlab.plugins import make_plugin_manager
from rnnlab.run import NullTracker, Source, resolve, train
from rnnlab.testing import (
    TINY_ADDING,
    TINY_TRAIN,
    DatasetContract,
    plugin_registering,
    registry_with,
)


class Capable(rnnlab.Cell):
    """Declares ``normalize`` but has no ``set_normalizers``."""

    capabilities = frozenset({"normalize"})

    def forward(self, x_t: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        return state[0], state


def test_a_capability_without_its_method_is_refused_when_registered() -> None:
    plugins = make_plugin_manager(
        entry_points=False, strict=False, extra=[("p", plugin_registering("cell", "c", Capable))]
    )
    assert plugins.registry().names("cell") == []
    assert plugins.errors() == [
        "plugin 'p' (not installed): registered cell 'c' badly: Capable declares capability "
        "'normalize' but has no set_normalizers()"
    ]
    assert not hasattr(rnnlab.Cell, "set_normalizers") and not hasattr(rnnlab.Cell, "init_identity")
    assert isinstance(ElmanCell(1, 2), rnnlab.IdentityInit | rnnlab.Normalizable)


class Nudge(rnnlab.Remedy):
    """Changes the gradients on every other step and says so in ``grad/clipped``."""

    class Params(rnnlab.Params):
        every: int = Field(2, gt=0)

    params: Params

    def __init__(self, params: rnnlab.Params | None = None) -> None:
        super().__init__(params)
        self.step = 0

    def after_backward(self, parameters: Sequence[Tensor], grad_norm: float) -> dict[str, float]:
        fired = self.step % self.params.every == 0
        self.step += 1
        return {self.CLIPPED: float(fired), "nudge/step": float(self.step)}


@pytest.mark.parametrize(
    ("remedies", "expected"),
    [  # logged at step 0 and, the mean of steps 1-3, at step 3; nudge fires on steps 0 and 2
        ([], [0.0, 0.0]),
        (["nudge"], [1.0, 1 / 3]),
        (["nudge", {"name": "clip", "threshold": 1e-9}], [1.0, 1.0]),
    ],
    ids=["none", "a third-party remedy", "any of two"],
)
def test_grad_clipped_is_a_core_metric_any_remedy_reports(remedies, expected) -> None:
    registry = registry_with("remedy", Nudge, "nudge")
    data = {
        "dataset": {"name": "adding", **TINY_ADDING},
        "cell": {"name": "rnn", "hidden_size": 4},
        "remedies": remedies,
        "train": {**TINY_TRAIN, "log_every": 4, "probe_every": 0, "plots": False},
    }
    tracker = NullTracker(keep_artifacts=False)
    result = train(resolve(Source(None, data), registry), tracker)
    assert result.outcome == "completed", result.message
    assert [v for _, v in tracker.history["grad/clipped"]] == pytest.approx(expected)


class Noise(rnnlab.SeededDataset):
    """The template's example: a generated task that implements ``generate`` alone."""

    class Params(rnnlab.Params):
        seq_len: int = 6
        val_size: int = 20
        test_size: int = 12

    params: Params
    kind = rnnlab.TaskKind.REGRESSION_LAST

    def __init__(self, params: rnnlab.Params | None = None, seed: int = 0) -> None:
        super().__init__(params, seed)
        self.input_size, self.output_size, self.seq_len = 1, 1, self.params.seq_len

    def generate(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x = torch.randn(self.seq_len, n, 1, generator=generator)
        return x, x[0]


class TestTheDatasetTemplate(DatasetContract):
    dataset_cls = Noise


def test_the_template_checks_seeds_and_sizes_the_splits() -> None:
    task = Noise(seed=1)
    assert [len(y) for _, y in task.batches("val", 8)] == [8, 8, 4]
    assert sum(len(y) for _, y in task.batches("test", 5)) == 12
    with pytest.raises(ValueError, match="unknown split 'dev'; expected one of 'train', 'val'"):
        task.batches("dev", 4)
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        task.batches("train", 0)
    with pytest.raises(TypeError, match="Noise needs .*Noise.Params, got Params"):
        Noise(rnnlab.Params())
    first, again = next(task.batches("train", 4)), next(Noise(seed=1).batches("train", 4))
    assert torch.equal(first[0], again[0])
    assert not torch.equal(first[0], next(Noise(seed=2).batches("train", 4))[0])


def test_identity_init_rebuilds_the_rnn_without_drawing_from_the_random_stream() -> None:
    torch.manual_seed(0)
    cell = ElmanCell(2, 3)
    state = torch.get_rng_state()
    cell.init_identity(1.0, "relu")
    assert torch.equal(torch.get_rng_state(), state)
    assert cell.rnn.nonlinearity == "relu" and cell.rnn.mode == "RNN_RELU"
    assert torch.equal(cell.weight_hh, torch.eye(3))
    x = torch.randn(5, 4, 2)
    fused, _ = cell.forward_fused(x, cell.init_state(4))
    h, hs = cell.init_state(4), []
    for x_t in x.unbind(0):
        out, h = cell.step(cell.project_inputs(x_t), h, 0)
        hs.append(out)
    torch.testing.assert_close(fused, torch.stack(hs))  # the fused path is a relu RNN too
    assert (fused >= 0).all()


ROOT = Path(__file__).resolve().parents[1]


def _untyped_params(source: str) -> list[str]:
    """The classes of ``source`` with a nested ``Params`` but no ``params: Params`` line."""
    missing = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        body = node.body
        if any(isinstance(n, ast.ClassDef) and n.name == "Params" for n in body) and not any(
            isinstance(n, ast.AnnAssign)
            and isinstance(n.target, ast.Name)
            and n.target.id == "params"
            for n in body
        ):
            missing.append(node.name)
    return missing


def test_every_plugin_class_types_its_params() -> None:
    """``params: Params`` below each nested ``Params`` (issue 16): in rnnlab's plugins, the
    example third-party plugin and every file ``rnnlab new-plugin`` writes; so none needs a
    ``type: ignore[attr-defined]`` to read its options."""
    sources = {
        str(path.relative_to(ROOT)): path.read_text()
        for folder in (ROOT / "plugins", ROOT / "tests" / "example_plugin" / "rnnlab_example")
        for path in sorted(folder.rglob("*.py"))
    }
    for kind in KINDS:
        files = render(plan_plugin(f"my-{kind}", kind))
        sources.update(
            {f"new-plugin --kind {kind}: {n}": t for n, t in files.items() if n.endswith(".py")}
        )
    assert _untyped_params("class A:\n    class Params: ...\n") == ["A"]  # the check checks
    untyped = {name: bad for name, text in sources.items() if (bad := _untyped_params(text))}
    assert untyped == {}
    ignored = [n for n, t in sources.items() if "ignore[attr-defined]" in t]
    assert ignored == []
