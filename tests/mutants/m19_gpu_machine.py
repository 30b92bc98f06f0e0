"""A GPU machine, simulated (auto is cuda): tests that assert cpu pin it, so pass."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = [
    "tests/test_train.py",
    "tests/test_sweep.py",
    "-k",
    "records_every_metric or mlflow_store or dry_run_prints",
]
EXPECT = "pass"  # not a defect: the selection must pass on a machine where auto is not the CPU


def apply() -> None:
    import os

    import torch

    import rnnlab.run._train
    import rnnlab.sweep._workers

    def make_resolve(original: Any) -> Any:
        def resolve_device(name: str) -> Any:
            # "auto" picks the GPU there: cpu:0 trains on the CPU but is told apart below
            return torch.device("cpu", 0) if name == "auto" else original(name)

        return resolve_device

    def make_describe(original: Any) -> Any:
        def describe_device(device: Any) -> str:
            return "cuda:0 (simulated)" if device == torch.device("cpu", 0) else original(device)

        return describe_device

    def make_visible(original: Any) -> Any:
        def visible_gpus() -> list[str]:
            listed = os.environ.get("CUDA_VISIBLE_DEVICES")  # one GPU, "0", unless hidden
            return ["0"] if listed is None else [g for g in listed.split(",") if g.strip()][:1]

        return visible_gpus

    swap(rnnlab.run._train, "resolve_device", make_resolve)
    swap(rnnlab.run._train, "describe_device", make_describe)
    swap(rnnlab.sweep._workers, "visible_gpus", make_visible)


def pytest_configure(config: Any) -> None:
    apply()
