"""CI=true without Chromium: the browser test must fail, not skip. Caught by: it."""

from __future__ import annotations

import os
import shutil
from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_report_browser.py", "-k", "renders_in_chromium"]


def apply() -> None:
    os.environ["CI"] = "true"

    def make(original: Any) -> Any:
        def which(name: str, *args: Any, **kwargs: Any) -> Any:
            return None if name.startswith("chromium") else original(name, *args, **kwargs)

        return which

    swap(shutil, "which", make)


def pytest_configure(config: Any) -> None:
    apply()
