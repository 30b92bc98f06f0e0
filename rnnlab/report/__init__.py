"""Reads a finished or running sweep: its trials, curves and versions (from Optuna and MLflow),
the report's figures, and the self-contained HTML page logged to the sweep's parent run.

Uses ``rnnlab.sweep`` (the plan, the outcome table) and ``rnnlab.run`` (the figures' floor);
never ``rnnlab.commands`` (tests/test_layers.py).
"""

from __future__ import annotations

from rnnlab.report._data import ReportData, TrialData, collect, versions
from rnnlab.report._findings import Finding, find, plan_findings, sweep_findings
from rnnlab.report._page import FIGURES, draw, render, write
from rnnlab.report._results import (
    SweepRecords,
    flow,
    frame,
    open_results,
    read_sweep,
    results,
)

__all__ = [
    "FIGURES",
    "Finding",
    "ReportData",
    "SweepRecords",
    "TrialData",
    "collect",
    "draw",
    "find",
    "flow",
    "frame",
    "open_results",
    "plan_findings",
    "read_sweep",
    "render",
    "results",
    "sweep_findings",
    "versions",
    "write",
]
