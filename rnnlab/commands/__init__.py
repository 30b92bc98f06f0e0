"""What each command of the CLI does and prints: ``rnnlab.cli`` parses the arguments and calls
these, nothing more.

Importing this package is cheap (click only, no torch, mlflow, optuna or pydantic): each command
imports what it needs when it runs, so ``rnnlab --help`` and ``rnnlab plugins`` stay instant.
The top layer: it may use every other package (tests/test_layers.py).
"""

from __future__ import annotations

from rnnlab.commands._common import quiet_mlflow, warn_plugin_errors
from rnnlab.commands._dynamics import dynamics_of_run
from rnnlab.commands._plugins import plugin_rows, show_plugins
from rnnlab.commands._report import report_sweep
from rnnlab.commands._run import ProgressDisplay, run_file
from rnnlab.commands._runs import list_runs
from rnnlab.commands._scaffold import ScaffoldError, new_plugin, next_steps, plan_plugin, render
from rnnlab.commands._sweep import ProgressView, print_plan, print_table, sweep_file
from rnnlab.commands._ui import open_ui, serve

__all__ = [
    "ProgressDisplay",
    "ProgressView",
    "ScaffoldError",
    "dynamics_of_run",
    "list_runs",
    "new_plugin",
    "next_steps",
    "open_ui",
    "plan_plugin",
    "plugin_rows",
    "print_plan",
    "print_table",
    "quiet_mlflow",
    "render",
    "report_sweep",
    "run_file",
    "serve",
    "show_plugins",
    "sweep_file",
    "warn_plugin_errors",
]
