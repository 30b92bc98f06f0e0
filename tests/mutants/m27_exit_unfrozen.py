"""The console script exits through the interpreter's full final collections.

Issue 21: 1.3-1.8 s of every command's exit. Caught by: tests/test_cli.py (in its subprocess:
the mutant is loaded there too)."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_cli.py::test_exit_collects_garbage_then_freezes_what_lives"]
SUBPROCESSES = True


def apply() -> None:
    import rnnlab.cli as cli

    swap(cli, "_before_exit", lambda original: lambda: None)


def pytest_configure(config: Any) -> None:
    apply()
