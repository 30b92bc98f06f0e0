"""The suites ignore RNNLAB_LOAD_PLUGINS and load lazily. Caught by: test_plugin_authors.py."""

from __future__ import annotations

import functools
from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_plugin_authors.py", "-k", "broken_plugin or honour"]


def apply() -> None:
    import rnnlab.testing._available as available
    from rnnlab.plugins import make_plugin_manager

    def make(original: Any) -> Any:  # the suites' registry before issue 17
        @functools.cache
        def installed(load: str | None) -> Any:
            return make_plugin_manager(load=None, strict=False, trace=False).registry()

        return installed

    swap(available, "_installed", make)


def pytest_configure(config: Any) -> None:
    apply()
