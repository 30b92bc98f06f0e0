"""weights/spectral_radius reports the spectral norm. Caught by: tests/test_metrics.py."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_metrics.py", "-k", "spectral"]


def apply() -> None:
    import rnnlab.run._train

    def make(original: Any) -> Any:
        def weight_metrics(model: Any) -> dict[str, float]:
            metrics: dict[str, float] = original(model)
            for key in list(metrics):
                if "spectral_radius" in key:
                    metrics[key] = metrics[key.replace("spectral_radius", "spectral_norm")]
            return metrics

        return weight_metrics

    swap(rnnlab.run._train, "weight_metrics", make)


def pytest_configure(config: Any) -> None:
    apply()
