"""The dataset contract suite."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor

from rnnlab.base import Dataset, Params, TaskKind
from rnnlab.run import build_model
from rnnlab.testing._available import UNDER_TEST, installed_registry, needed, registry_with
from rnnlab.testing._support import Contract, short_run, unknown_key_rejected


class DatasetContract(Contract):
    """What every :class:`rnnlab.Dataset` must do. Set ``dataset_cls``; a dataset that needs
    files overrides ``make_params`` and writes them into ``tmp_path``.

    Different seeds must give different training data (each seed of a sweep is a replicate).
    A dataset that yields the same batches whatever the seed, on purpose (a fixed benchmark
    stream), sets ``same_data_for_every_seed = True``; the suite then checks that instead."""

    dataset_cls: ClassVar[type[Dataset]]
    eval_batch: ClassVar[int] = 64
    train_batches: ClassVar[int] = 25
    cell_name: ClassVar[str] = "rnn"
    same_data_for_every_seed: ClassVar[bool] = False

    def make_params(self, tmp_path: Path) -> Params | None:
        return self.params

    @pytest.fixture
    def dataset_params(self, tmp_path: Path) -> Params:
        params = self.make_params(tmp_path)
        return params if params is not None else self.dataset_cls.Params()

    def batches(self, ds: Dataset, split: str, n: int, size: int) -> list[tuple[Tensor, Tensor]]:
        return list(itertools.islice(ds.batches(split, size), n))

    def test_params_reject_unknown_keys(self) -> None:
        unknown_key_rejected(self.dataset_cls)

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

    def test_different_seeds_give_different_data(self, dataset_params: Params) -> None:
        a, b = (
            self.batches(self.dataset_cls(dataset_params, seed), "train", 3, self.batch)
            for seed in (5, 6)
        )
        same = all(
            torch.equal(xa, xb) and torch.equal(ya, yb)
            for (xa, ya), (xb, yb) in zip(a, b, strict=True)
        )
        if self.same_data_for_every_seed:
            assert same, "same_data_for_every_seed is set, but seeds 5 and 6 differ"
        else:
            assert not same, (
                "seeds 5 and 6 gave the same training batches: the dataset ignores its seed (if "
                "that is on purpose, set same_data_for_every_seed = True on the test class)"
            )

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
        cell_cls: Any = needed(installed_registry(), "cell", self.cell_name, "cell_name")
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
        registry = registry_with("dataset", self.dataset_cls)
        needed(registry, "cell", self.cell_name, "cell_name")
        short_run(registry, dataset, {"name": self.cell_name, "hidden_size": 8})
