"""rnnlab.run imports rnnlab.sweep (an arrow pointing up, a cycle). Caught by: test_layers.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_layers.py", "-k", "point_down or cycle"]
PLANTED = "\nfrom rnnlab.sweep import Sweep  # planted by tests/mutants/m20_upward_import.py\n"


def apply() -> None:
    train = Path(__file__).resolve().parents[2] / "rnnlab" / "run" / "_train.py"
    if not train.is_file():
        raise AttributeError(f"{train} has moved: update the mutant")

    def make(original: Any) -> Any:
        def read_text(self: Path, *args: Any, **kwargs: Any) -> str:
            text: str = original(self, *args, **kwargs)
            return text + PLANTED if self.resolve() == train else text

        return read_text

    swap(Path, "read_text", make)


def pytest_configure(config: Any) -> None:
    apply()
