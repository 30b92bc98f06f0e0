"""The ``orthogonal`` remedy and the seam it acts through (capability ``recurrent_init``):
every cell that declares it ends up with W W^T = gain^2 I per gate block, drawn from the
run's seeded stream, and every other cell is refused by name (issues 17 and 20)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from click.testing import CliRunner
from rnnlab_remedies.orthogonal import OrthogonalInit

from rnnlab.base import Cell, TaskKind
from rnnlab.cli import cli
from rnnlab.errors import IncompatibleError
from rnnlab.run import Source, build, build_model, resolve
from rnnlab.testing import installed_registry

I, H = 3, 5  # noqa: E741 - the usual names of the sizes
EXPECTED = {"rnn", "lstm", "gru", "simple", "cornn", "lem"}


def declaring() -> list[str]:
    registry = installed_registry()
    names = registry.names("cell")
    return [n for n in names if "recurrent_init" in registry.get("cell", n).capabilities]


def test_the_builtin_cells_with_a_free_recurrent_matrix_declare_it() -> None:
    assert set(declaring()) >= EXPECTED
    registry = installed_registry()
    for name in ("indrnn", "unicornn", "antisymmetric", "lipschitz", "exprnn", "lru"):
        assert "recurrent_init" not in registry.get("cell", name).capabilities, name


def model(cell_cls: type[Cell], *remedies: OrthogonalInit, layers: int = 2, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return build_model(
        cell_cls,
        cell_cls.Params(),
        input_size=I,
        hidden_size=H,
        layers=layers,
        output_size=2,
        kind=TaskKind.REGRESSION_LAST,
        remedies=remedies,
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("gain", [1.0, 0.7])
def test_every_gate_block_is_gain_times_an_orthogonal_matrix(name: str, gain: float) -> None:
    cell_cls = installed_registry().get("cell", name)
    remedy = OrthogonalInit(OrthogonalInit.Params(gain=gain))
    treated, plain = model(cell_cls, remedy), model(cell_cls)
    eye = torch.eye(H)
    for layer, cell in enumerate(treated.layers()):
        weight = cell.recurrent_weight().detach()
        blocks = weight.shape[0] // H
        assert weight.shape == (blocks * H, H)
        for k, block in enumerate(weight.split(H)):
            where = f"{name} layer {layer} block {k}"
            torch.testing.assert_close(block @ block.T, gain**2 * eye, atol=1e-5, rtol=0, msg=where)
            torch.testing.assert_close(block.T @ block, gain**2 * eye, atol=1e-5, rtol=0, msg=where)
    # only the recurrent weight changed: layer 0 is the same cell, from the same seed, before
    before, after = plain.layers()[0].state_dict(), treated.layers()[0].state_dict()
    changed = {key: int((before[key] != after[key]).sum()) for key in before}
    changed = {key: n for key, n in changed.items() if n}
    assert len(changed) == 1, changed  # the one parameter that holds the recurrent weight
    assert 0 < sum(changed.values()) <= blocks * H * H, changed


def test_the_initial_weights_follow_the_runs_seed() -> None:
    """``rnnlab.run.train`` seeds torch with the run's seed, then builds (``build``): the same
    seed gives the same orthogonal W, another seed another one."""

    def weight(seed: int) -> torch.Tensor:
        data = {
            "dataset": {"name": "adding", "seq_len": 8},
            "cell": {"name": "lstm", "hidden_size": H},
            "remedies": [{"name": "orthogonal", "gain": 1.0}],
            "seed": seed,
        }
        run = resolve(Source(path=None, data=data), installed_registry())
        torch.manual_seed(run.config.seed)
        _, _, built = build(run, torch.device("cpu"))
        return built.layers()[0].recurrent_weight().detach().clone()

    first, again, other = weight(3), weight(3), weight(4)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def resolve_remedies(cell: str, remedies: list[Any]) -> Any:
    data = {"dataset": {"name": "adding"}, "cell": {"name": cell}, "remedies": remedies}
    return resolve(Source(path=None, data=data), installed_registry())


@pytest.mark.parametrize("cell", ["indrnn", "exprnn", "antisymmetric"])
def test_a_cell_without_recurrent_init_is_refused_naming_those_that_have_it(cell: str) -> None:
    with pytest.raises(IncompatibleError) as error:
        resolve_remedies(cell, ["orthogonal"])
    message = str(error.value)
    assert f"remedy 'orthogonal' is incompatible with cell '{cell}'" in message
    assert "needs a cell with recurrent_init" in message
    supported = set(message.split("cells that support it: ", 1)[1].rstrip(".").split(", "))
    assert supported == set(declaring()), message


def test_orthogonal_and_relu_set_the_same_matrix_and_are_refused_together() -> None:
    with pytest.raises(IncompatibleError, match="remove one of them from remedies"):
        resolve_remedies("rnn", ["orthogonal", "relu"])
    resolve_remedies("rnn", [{"name": "orthogonal", "gain": 0.9}])  # alone it resolves


def test_a_sweep_records_the_cells_without_it_as_incompatible(write_config) -> None:
    path = write_config(
        "dataset: {name: adding, seq_len: 10}\ncell: {name: rnn, hidden_size: 8}\n"
        "train: {steps: 4, device: cpu}\n"
        "sweep: {workers: 1, space: {cell.name: [rnn, indrnn], remedies: [[orthogonal]]}}\n",
        name="orthogonal.yaml",
    )
    result = CliRunner().invoke(cli, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "1. cell.name=rnn remedies=orthogonal\n" in result.output
    assert (
        "2. cell.name=indrnn remedies=orthogonal  [incompatible: remedy 'orthogonal' is "
        "incompatible with cell 'indrnn': needs a cell with recurrent_init" in result.output
    )
    assert "1 trials are incompatible: recorded as 'incompatible', not trained" in result.output
