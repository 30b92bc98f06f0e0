"""Every built-in cell, dataset and remedy passes the contract suites of rnnlab.testing, by the
same one-subclass idiom a third-party plugin uses."""

from __future__ import annotations

from pathlib import Path

from rnnlab_cells.indrnn import IndRNNCell
from rnnlab_cells.simple import SimpleRNN
from rnnlab_cells.twins import ElmanCell, GRUCell, LSTMCell
from rnnlab_remedies.clip import GradientClipping
from rnnlab_remedies.gating import Gating
from rnnlab_remedies.norm import BatchNormRemedy, LayerNormRemedy
from rnnlab_remedies.orthogonal import OrthogonalInit
from rnnlab_remedies.relu import IdentityReLU
from rnnlab_remedies.residual import Residual
from rnnlab_tasks.adding import AddingProblem
from rnnlab_tasks.chars import CharLanguageModel
from rnnlab_tasks.copy import CopyMemory
from rnnlab_tasks.digits import SequentialDigits
from rnnlab_tasks.forecast import TimeSeriesForecast
from rnnlab_tasks.mnist import SequentialMNIST
from test_tasks import make_mnist

import rnnlab
from rnnlab.base import Params
from rnnlab.testing import CellContract, DatasetContract, RemedyContract, installed_registry

# --- cells -----------------------------------------------------------------------------------


class TestRNNTanh(CellContract):
    cell_cls = ElmanCell


class TestRNNRelu(CellContract):
    cell_cls = ElmanCell
    params = ElmanCell.Params(nonlinearity="relu")


class TestLSTM(CellContract):
    cell_cls = LSTMCell


class TestLSTMForgetBias(CellContract):
    cell_cls = LSTMCell
    params = LSTMCell.Params(forget_bias=1.0)


class TestGRU(CellContract):
    cell_cls = GRUCell


class TestIndRNN(CellContract):
    cell_cls = IndRNNCell


class TestSimple(CellContract):
    cell_cls = SimpleRNN


class TestSimpleTanhWithOutput(CellContract):
    cell_cls = SimpleRNN
    params = SimpleRNN.Params(nonlinearity="tanh", output_size=2)
    unused_parameters = frozenset({"i2o.weight", "i2o.bias"})  # tutorial_forward's output only


# --- datasets --------------------------------------------------------------------------------


class TestAdding(DatasetContract):
    dataset_cls = AddingProblem
    params = AddingProblem.Params(seq_len=10, val_size=50, test_size=30)


class TestCopy(DatasetContract):
    dataset_cls = CopyMemory
    params = CopyMemory.Params(seq_len=5, val_size=50, test_size=30)


class TestDigits(DatasetContract):
    dataset_cls = SequentialDigits


class TestDigitsRowsPermuted(DatasetContract):
    dataset_cls = SequentialDigits
    params = SequentialDigits.Params(mode="row", permute=True)


class TestMNIST(DatasetContract):
    dataset_cls = SequentialMNIST

    def make_params(self, tmp_path: Path) -> Params:
        make_mnist(tmp_path, gz=True)  # tiny IDX files: 20 training, 10 test images
        return SequentialMNIST.Params(root=str(tmp_path), mode="row", val_size=5)


class TestMNISTPixels(DatasetContract):
    dataset_cls = SequentialMNIST
    train_batches = 8

    def make_params(self, tmp_path: Path) -> Params:
        make_mnist(tmp_path, gz=False)
        return SequentialMNIST.Params(root=str(tmp_path), val_size=5)


class TestForecast(DatasetContract):
    dataset_cls = TimeSeriesForecast
    params = TimeSeriesForecast.Params(length=400, seq_len=12)


class TestForecastSinesKStep(DatasetContract):
    dataset_cls = TimeSeriesForecast
    params = TimeSeriesForecast.Params(series="sines", length=300, seq_len=10, horizon=3)


class TestForecastCSV(DatasetContract):
    dataset_cls = TimeSeriesForecast

    def make_params(self, tmp_path: Path) -> Params:
        rows = "\n".join(f"{i},{(i % 17) * 0.3 + i * 0.01}" for i in range(300))
        (tmp_path / "series.csv").write_text(f"t,load\n{rows}\n")
        path = str(tmp_path / "series.csv")
        return TimeSeriesForecast.Params(series="csv", path=path, column="load", seq_len=10)


class TestChars(DatasetContract):
    dataset_cls = CharLanguageModel
    params = CharLanguageModel.Params(seq_len=20)


class TestCharsTextFile(DatasetContract):
    dataset_cls = CharLanguageModel

    def make_params(self, tmp_path: Path) -> Params:
        (tmp_path / "book.txt").write_text("It was the best of times, it was the worst. " * 60)
        return CharLanguageModel.Params(path=str(tmp_path / "book.txt"), seq_len=16)


# --- remedies --------------------------------------------------------------------------------


class TestClipNorm(RemedyContract):
    remedy_cls = GradientClipping
    params = GradientClipping.Params(mode="norm", threshold=0.01)


class TestClipValue(RemedyContract):
    remedy_cls = GradientClipping
    params = GradientClipping.Params(mode="value", threshold=0.01)


class TestReluOnRNN(RemedyContract):
    remedy_cls = IdentityReLU


class TestReluOnSimple(RemedyContract):
    remedy_cls = IdentityReLU
    params = IdentityReLU.Params(scale=0.9)
    cell_name = "simple"


class TestOrthogonalOnRNN(RemedyContract):
    remedy_cls = OrthogonalInit


class TestOrthogonalOnLSTM(RemedyContract):
    remedy_cls = OrthogonalInit
    params = OrthogonalInit.Params(gain=0.9)
    cell_name = "lstm"


class TestBatchNormOnRNN(RemedyContract):
    remedy_cls = BatchNormRemedy


class TestBatchNormOnLSTM(RemedyContract):
    remedy_cls = BatchNormRemedy
    cell_name = "lstm"


class TestBatchNormOnGRU(RemedyContract):
    remedy_cls = BatchNormRemedy
    cell_name = "gru"


class TestBatchNormOnIndRNN(RemedyContract):
    remedy_cls = BatchNormRemedy
    cell_name = "indrnn"


class TestLayerNormOnRNN(RemedyContract):
    remedy_cls = LayerNormRemedy


class TestLayerNormOnLSTM(RemedyContract):
    remedy_cls = LayerNormRemedy
    cell_name = "lstm"


class TestLayerNormOnGRU(RemedyContract):
    remedy_cls = LayerNormRemedy
    cell_name = "gru"


class TestLayerNormOnIndRNN(RemedyContract):
    remedy_cls = LayerNormRemedy
    cell_name = "indrnn"


class TestResidualOnRNN(RemedyContract):
    remedy_cls = Residual


class TestResidualOnLSTM(RemedyContract):
    remedy_cls = Residual
    params = Residual.Params(through_time=False)  # through time, an additive cell is refused
    cell_name = "lstm"


class TestResidualOnIndRNN(RemedyContract):
    remedy_cls = Residual
    params = Residual.Params(step=0.5)
    cell_name = "indrnn"


class TestGatingOnRNN(RemedyContract):
    remedy_cls = Gating


class TestGatingOnLSTM(RemedyContract):
    remedy_cls = Gating
    params = Gating.Params(bias=-1.0)
    cell_name = "lstm"


class HiddenPenalty(rnnlab.Remedy):
    """Not a built-in: a loss term on the hidden states (weight x mean h_t^2), so that the suite's
    loss-term checks run in the default suite too (no built-in remedy has a loss term)."""

    class Params(rnnlab.Params):
        weight: float = 0.1

    needs_states = True

    def loss_term(self, loss, traces):
        hidden = [h for trace in traces for h in trace.hidden]
        if not hidden:
            return None
        penalty = sum(h.square().mean() for h in hidden) / len(hidden)
        return self.params.weight * penalty, {"penalty/value": float(penalty.detach())}


class TestHiddenPenalty(RemedyContract):
    remedy_cls = HiddenPenalty


class TestHiddenPenaltyOnLSTM(RemedyContract):
    remedy_cls = HiddenPenalty
    cell_name = "lstm"


# --- every built-in is covered ---------------------------------------------------------------


def test_every_builtin_has_a_contract_test() -> None:
    """A new built-in plugin class must get its one-line contract subclass here (issue 20's
    cells have theirs in tests/test_modern_cells.py, imported so that they count)."""
    import test_modern_cells  # noqa: F401

    covered: set[type] = set()
    for suite, attribute in (
        (CellContract, "cell_cls"),
        (DatasetContract, "dataset_cls"),
        (RemedyContract, "remedy_cls"),
    ):
        covered.update(getattr(c, attribute) for c in suite.__subclasses__())
    registry = installed_registry()
    builtin = [
        entry.cls
        for entries in registry.entries.values()
        for entry in entries.values()
        if entry.plugin.distribution == "rnnlab"
    ]
    assert builtin and [c.__qualname__ for c in builtin if c not in covered] == []
