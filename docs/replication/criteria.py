"""Criteria of the verdicts: the same numbers as tests/test_replications.py.

The page's "Why these tolerances" (:data:`replication.page.TOLERANCES`) justifies each.
"""

from __future__ import annotations

ADDING_BASELINE = 1 / 6  # MSE of always predicting 1
SOLVED = 0.05  # val MSE below this: far below the baseline
AT_BASELINE = 0.12  # val MSE above this: still at the baseline
RATIO_GAP = 3.0  # orders of magnitude between tanh RNN's and LSTM's log10 ratio
BEATS = 0.9  # copy: a loss below BEATS x the memoryless baseline beats it
FLAT = 1.0  # |log10 ||dL/dh_1|| / ||dL/dh_T|||| at most this: a flat curve
ORDER = 1.0  # one order of magnitude: the smallest gradient difference counted
