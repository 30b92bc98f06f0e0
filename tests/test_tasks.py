"""Tests of the built-in datasets (plugins/rnnlab_tasks): shapes, seeding, task definitions."""

from __future__ import annotations

import gzip
import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from rnnlab_tasks import register_datasets
from rnnlab_tasks.adding import AddingProblem
from rnnlab_tasks.chars import CharLanguageModel
from rnnlab_tasks.copy import CopyMemory
from rnnlab_tasks.digits import SequentialDigits
from rnnlab_tasks.forecast import TimeSeriesForecast
from rnnlab_tasks.mnist import SequentialMNIST

from rnnlab.base import Dataset, TaskKind
from rnnlab.errors import DataError
from rnnlab.plugins import make_plugin_manager


def first(ds: Dataset, split: str, batch_size: int, n: int = 1) -> list[tuple[torch.Tensor, ...]]:
    return list(itertools.islice(ds.batches(split, batch_size), n))


def whole(ds: Dataset, split: str, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(ds.batches(split, batch_size))
    x = torch.cat([b[0] for b in batches], dim=1)
    y_dim = 1 if ds.kind is TaskKind.CLASSIFY_EVERY else 0
    return x, torch.cat([b[1] for b in batches], dim=y_dim)


def assert_same_batches(a: list[tuple[torch.Tensor, ...]], b: list[tuple[torch.Tensor, ...]]):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


# --- registration ----------------------------------------------------------------------------


def test_hook_registers_every_builtin_dataset() -> None:
    found: dict[str, type | str] = {}
    register_datasets(lambda name, cls: found.__setitem__(name, cls))
    registry = make_plugin_manager(load=["rnnlab_tasks"]).registry()
    assert set(found) == set(registry.names("dataset"))
    assert {name: registry.get("dataset", name) for name in found} == {
        "adding": AddingProblem,
        "copy": CopyMemory,
        "digits": SequentialDigits,
        "mnist": SequentialMNIST,
        "forecast": TimeSeriesForecast,
        "chars": CharLanguageModel,
    }


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, rnnlab_tasks; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# that each task's Params reject unknown keys: DatasetContract.test_params_reject_unknown_keys
# (tests/test_contracts.py), for every built-in task


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (AddingProblem, {"seq_len": 1}),
        (AddingProblem, {"val_size": 0}),
        (CopyMemory, {"seq_len": 0}),
        (SequentialDigits, {"mode": "column"}),
        (SequentialDigits, {"val_fraction": 0.5, "test_fraction": 0.45}),
        (SequentialMNIST, {"val_size": 0}),
    ],
)
def test_params_reject_bad_values(cls: type[Dataset], kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        cls.Params.model_validate(kwargs)


@pytest.mark.parametrize("cls", [AddingProblem, CopyMemory, SequentialDigits])
def test_unknown_split_names_the_allowed_ones(cls: type[Dataset]) -> None:
    with pytest.raises(ValueError, match="'train', 'val', 'test'"):
        cls().batches("validation", 4)


# --- adding ----------------------------------------------------------------------------------


def test_adding_shapes_and_dtypes() -> None:
    ds = AddingProblem(AddingProblem.Params(seq_len=50, val_size=30, test_size=20))
    assert (ds.input_size, ds.output_size, ds.seq_len) == (2, 1, 50)
    assert ds.kind is TaskKind.REGRESSION_LAST and ds.label() == "adding T=50"
    assert AddingProblem().label() == "adding T=100"
    ((x, y),) = first(ds, "train", 8)
    assert x.shape == (50, 8, 2) and x.dtype == torch.float32
    assert y.shape == (8, 1) and y.dtype == torch.float32
    sizes = [x.shape[1] for x, _ in ds.batches("val", 16)]
    assert sizes == [16, 14]
    assert whole(ds, "test")[1].shape == (20, 1)


@pytest.mark.parametrize("seq_len", [2, 3, 101])
def test_adding_markers_and_target(seq_len: int) -> None:
    ds = AddingProblem(AddingProblem.Params(seq_len=seq_len, val_size=500))
    x, y = whole(ds, "val")
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(markers.unique().tolist()) <= {0.0, 1.0}
    half = seq_len // 2
    assert (markers[:half].sum(0) == 1).all()
    assert (markers[half:].sum(0) == 1).all()
    assert torch.allclose((values * markers).sum(0), y[:, 0])


def test_adding_baseline_predicting_one() -> None:
    ds = AddingProblem(AddingProblem.Params(seq_len=20, val_size=20000))
    _, y = whole(ds, "val", 5000)
    mse = ds.loss(torch.ones_like(y), y).item()
    assert ds.baseline_loss == pytest.approx(1 / 6)
    assert mse == pytest.approx(1 / 6, abs=0.01)
    assert ds.accuracy(y + 0.01, y).item() == 1.0
    assert ds.accuracy(y + 0.05, y).item() == 0.0


def test_adding_determinism() -> None:
    p = AddingProblem.Params(seq_len=30, val_size=40, test_size=40)
    a, b, c = AddingProblem(p, seed=1), AddingProblem(p, seed=1), AddingProblem(p, seed=2)
    assert_same_batches(list(a.batches("val", 16)), list(b.batches("val", 16)))
    assert_same_batches(first(a, "train", 8, 3), first(b, "train", 8, 3))
    assert not torch.equal(whole(a, "val")[0], whole(c, "val")[0])
    assert not torch.equal(first(a, "train", 8)[0][0], first(c, "train", 8)[0][0])
    # the splits draw from different streams, and the val set does not depend on batch size
    assert not torch.equal(whole(a, "val")[0], whole(a, "test")[0])
    assert not torch.equal(whole(a, "val")[0][:, :8], first(a, "train", 8)[0][0])
    assert torch.equal(whole(a, "val", 7)[0], whole(a, "val", 40)[0])


# --- copy ------------------------------------------------------------------------------------


def test_copy_shapes_and_label() -> None:
    ds = CopyMemory(CopyMemory.Params(seq_len=15, val_size=12, test_size=5))
    assert (ds.input_size, ds.output_size, ds.seq_len) == (10, 10, 35)
    assert ds.kind is TaskKind.CLASSIFY_EVERY and ds.label() == "copy T=15"
    assert CopyMemory().label() == "copy T=100" and CopyMemory().seq_len == 120
    ((x, y),) = first(ds, "train", 4)
    assert x.shape == (35, 4, 10) and x.dtype == torch.float32
    assert y.shape == (35, 4) and y.dtype == torch.long
    assert [tuple(y.shape) for _, y in ds.batches("val", 8)] == [(35, 8), (35, 4)]
    assert whole(ds, "test")[0].shape == (35, 5, 10)


@pytest.mark.parametrize("delay", [1, 2, 25])
def test_copy_structure(delay: int) -> None:
    ds = CopyMemory(CopyMemory.Params(seq_len=delay, val_size=50))
    x, y = whole(ds, "val")
    assert (x.sum(-1) == 1).all()  # one-hot
    sym = x.argmax(-1)
    data = sym[:10]
    assert ((data >= 0) & (data <= 7)).all()
    assert (sym[10 : 10 + delay - 1] == 8).all()
    assert (sym[10 + delay - 1] == 9).all()
    assert (sym[10 + delay :] == 8).all()
    assert sym.shape[0] == delay + 20
    assert (y[: delay + 10] == 8).all()
    assert torch.equal(y[delay + 10 :], data)


@pytest.mark.parametrize(("delay", "expected"), [(100, 0.1733), (200, 0.0945), (1000, 0.0204)])
def test_copy_baseline_formula(delay: int, expected: float) -> None:
    ds = CopyMemory(CopyMemory.Params(seq_len=delay))
    assert ds.baseline_loss == pytest.approx(10 * math.log(8) / (delay + 20))
    assert ds.baseline_loss == pytest.approx(expected, abs=1e-4)


def test_copy_memoryless_predictor_scores_the_baseline() -> None:
    ds = CopyMemory(CopyMemory.Params(seq_len=30, val_size=64))
    _, y = whole(ds, "val")
    out = torch.full((*y.shape, 10), -1e4)
    out[:40, :, 8] = 0.0  # certain blank while waiting
    out[40:, :, :8] = 0.0  # uniform over the data symbols when recalling
    assert ds.loss(out, y).item() == pytest.approx(ds.baseline_loss, rel=1e-4)


def test_copy_accuracy_counts_only_the_recalled_symbols() -> None:
    ds = CopyMemory(CopyMemory.Params(seq_len=20, val_size=16))
    _, y = whole(ds, "val")
    perfect = torch.nn.functional.one_hot(y, 10).float()
    assert ds.accuracy(perfect, y).item() == 1.0
    wrong_early = perfect.clone()
    wrong_early[:-10] = torch.nn.functional.one_hot(torch.full_like(y[:-10], 3), 10).float()
    assert ds.accuracy(wrong_early, y).item() == 1.0
    wrong_late = perfect.clone()
    wrong_late[-10:] = torch.nn.functional.one_hot(torch.full_like(y[-10:], 8), 10).float()
    assert ds.accuracy(wrong_late, y).item() == 0.0
    half = perfect.clone()
    half[-5:] = torch.nn.functional.one_hot(torch.full_like(y[-5:], 9), 10).float()
    assert ds.accuracy(half, y).item() == pytest.approx(0.5)


def test_copy_determinism() -> None:
    p = CopyMemory.Params(seq_len=10, val_size=20)
    a, b, c = CopyMemory(p, seed=5), CopyMemory(p, seed=5), CopyMemory(p, seed=6)
    assert_same_batches(list(a.batches("val", 8)), list(b.batches("val", 8)))
    assert_same_batches(first(a, "train", 4, 2), first(b, "train", 4, 2))
    assert not torch.equal(whole(a, "val")[1], whole(c, "val")[1])
    assert not torch.equal(first(a, "train", 16)[0][1], first(c, "train", 16)[0][1])


# --- digits ----------------------------------------------------------------------------------


def test_digits_pixel_and_row_shapes() -> None:
    pixel = SequentialDigits()
    assert (pixel.seq_len, pixel.input_size, pixel.output_size) == (64, 1, 10)
    assert pixel.kind is TaskKind.CLASSIFY_LAST and pixel.label() == "digits pixel"
    row = SequentialDigits(SequentialDigits.Params(mode="row", permute=True))
    assert (row.seq_len, row.input_size) == (8, 8) and row.label() == "digits row perm"
    for ds, (t, f) in [(pixel, (64, 1)), (row, (8, 8))]:
        for split in ("train", "val", "test"):
            ((x, y),) = first(ds, split, 32)
            assert x.shape == (t, 32, f) and x.dtype == torch.float32
            assert y.shape == (32,) and y.dtype == torch.long
            assert x.min() >= 0 and x.max() <= 1 and y.min() >= 0 and y.max() <= 9
    # pixel and row modes are the same images, read in row-major order
    xp, yp = whole(pixel, "val")
    xr, yr = whole(SequentialDigits(SequentialDigits.Params(mode="row")), "val")
    assert torch.equal(yp, yr)
    assert torch.equal(xp[:, :, 0], xr.permute(0, 2, 1).reshape(64, -1))


def test_digits_split_is_fixed_disjoint_and_complete() -> None:
    ds = SequentialDigits()
    parts = {s: ds.split_indices(s).tolist() for s in ("train", "val", "test")}
    assert len(parts["val"]) == len(parts["test"]) == 270 and len(parts["train"]) == 1257
    assert sorted(sum(parts.values(), [])) == list(range(1797))
    assert parts == {s: SequentialDigits(seed=9).split_indices(s).tolist() for s in parts}
    assert whole(ds, "val")[0].shape[1] == 270
    assert whole(ds, "test", 100)[1].shape == (270,)


def test_digits_permutation_is_fixed_across_seeds_and_permutes() -> None:
    p = SequentialDigits.Params(permute=True)
    a, b = SequentialDigits(p, seed=0), SequentialDigits(p, seed=1)
    assert a.permutation is not None and b.permutation is not None
    assert torch.equal(a.permutation, b.permutation)
    assert not torch.equal(a.permutation, torch.arange(64))
    other = SequentialDigits(SequentialDigits.Params(permute=True, permutation_seed=1))
    assert other.permutation is not None and not torch.equal(a.permutation, other.permutation)
    plain, _ = whole(SequentialDigits(), "val")
    permuted, _ = whole(a, "val")
    assert torch.equal(permuted, plain[a.permutation])
    assert not torch.equal(permuted, plain)


def test_digits_determinism_and_epochs() -> None:
    a, b, c = SequentialDigits(seed=3), SequentialDigits(seed=3), SequentialDigits(seed=4)
    assert_same_batches(first(a, "train", 16, 3), first(b, "train", 16, 3))
    assert not torch.equal(first(a, "train", 16)[0][0], first(c, "train", 16)[0][0])
    # val and test are fixed by the split, not by the run seed
    assert_same_batches(list(a.batches("val", 64)), list(c.batches("val", 64)))
    # train never ends: more batches than one epoch, each full
    batches = first(a, "train", 500, 4)
    assert [x.shape[1] for x, _ in batches] == [500] * 4


# --- mnist -----------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, gz: bool, magic: int | None = None) -> None:
    magic = magic if magic is not None else 0x0800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def make_mnist(folder: Path, gz: bool, n_train: int = 20, n_test: int = 10) -> None:
    """Image i of a part has every pixel equal to i (so images are identifiable); label i % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.repeat(np.arange(n, dtype=np.uint8), 28 * 28).reshape(n, 28, 28)
        images[:, 0, 1] = 255  # one bright pixel, so that row-major order is checkable
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, gz)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files(tmp_path: Path, gz: bool) -> None:
    make_mnist(tmp_path, gz)
    ds = SequentialMNIST(SequentialMNIST.Params(root=str(tmp_path), val_size=5))
    assert (ds.seq_len, ds.input_size, ds.output_size) == (784, 1, 10)
    assert ds.kind is TaskKind.CLASSIFY_LAST and ds.label() == "mnist pixel"
    x, y = whole(ds, "val", 4)
    assert x.shape == (784, 5, 1) and x.dtype == torch.float32
    assert y.dtype == torch.long and y.tolist() == [5, 6, 7, 8, 9]  # the end of the train file
    assert torch.allclose(x[0, :, 0], torch.arange(15, 20) / 255)
    assert (x[1] == 1.0).all()
    x, y = whole(ds, "test", 3)
    assert x.shape == (784, 10, 1) and y.tolist() == list(range(10))
    ((x, y),) = first(ds, "train", 6)
    assert x.shape == (784, 6, 1) and y.shape == (6,)
    # one epoch of training covers the 15 training images exactly once
    seen = torch.cat([x[0, :, 0] for x, _ in first(ds, "train", 5, 3)]) * 255
    assert sorted(seen.round().long().tolist()) == list(range(15))


def test_mnist_row_mode_and_permutation(tmp_path: Path) -> None:
    make_mnist(tmp_path, gz=True)
    row = SequentialMNIST(SequentialMNIST.Params(root=str(tmp_path), mode="row", val_size=5))
    ((x, y),) = first(row, "val", 5)
    assert x.shape == (28, 5, 28) and row.label() == "mnist row"
    assert (x[0, :, 1] == 1.0).all() and (x[1, :, 1] < 1).all()
    p = SequentialMNIST.Params(root=str(tmp_path), permute=True, val_size=5)
    a, b = SequentialMNIST(p, seed=0), SequentialMNIST(p, seed=7)
    assert a.label() == "mnist pixel perm"
    assert a.permutation is not None and b.permutation is not None
    assert torch.equal(a.permutation, b.permutation)
    xa, _ = whole(a, "val")
    assert (xa[int((a.permutation == 1).nonzero())] == 1.0).all()
    assert not torch.equal(first(a, "train", 4)[0][1], first(b, "train", 4)[0][1])


def test_mnist_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_mnist(tmp_path, gz=False)
    monkeypatch.setenv("RNNLAB_MNIST_DIR", str(tmp_path))
    assert SequentialMNIST.Params().root == str(tmp_path)
    assert SequentialMNIST(SequentialMNIST.Params(val_size=2)).root == tmp_path


def test_mnist_missing_files(tmp_path: Path) -> None:
    folder = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        SequentialMNIST(SequentialMNIST.Params(root=str(folder)))
    message = str(err.value)
    assert str(folder) in message and "dataset.root" in message
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        assert name in message
    make_mnist(folder, gz=True)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing in .*: t10k-labels-idx1-ubyte\\. Download"):
        SequentialMNIST(SequentialMNIST.Params(root=str(folder)))


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_bad_magic_names_the_file(tmp_path: Path, gz: bool) -> None:
    make_mnist(tmp_path, gz)
    bad = np.zeros((20, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", bad, gz, magic=0x0801)
    ds = SequentialMNIST(SequentialMNIST.Params(root=str(tmp_path), val_size=5))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*magic"):
        first(ds, "train", 4)


def test_mnist_size_mismatch_and_bad_gzip(tmp_path: Path) -> None:
    make_mnist(tmp_path, gz=False)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    ds = SequentialMNIST(SequentialMNIST.Params(root=str(tmp_path), val_size=5))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        first(ds, "test", 4)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    ds = SequentialMNIST(SequentialMNIST.Params(root=str(tmp_path), val_size=5))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz"):
        first(ds, "val", 4)


def test_mnist_val_size_too_large(tmp_path: Path) -> None:
    make_mnist(tmp_path, gz=False)
    ds = SequentialMNIST(SequentialMNIST.Params(root=str(tmp_path)))  # default 5000 > 20
    with pytest.raises(DataError, match="val_size=5000"):
        first(ds, "train", 4)
