"""Write docs/results.md and its figures (docs/results/*.png) from the replication sweeps.

Every measured number on the page is read back from the sweeps' Optuna studies and MLflow runs
with rnnlab's own reading code (:func:`rnnlab.report.collect`); the papers' numbers are
quoted from shared/REFERENCES.md. Run the CPU profiles, then this script, in one folder::

    export MLFLOW_TRACKING_URI=sqlite:///$PWD/mlflow.db
    for f in adding adding-relu copy digits clipping gradflow depth flossing modern; do
        rnnlab sweep $REPO/experiments/replications/$f.yaml
    done
    python $REPO/docs/make_results.py          # reads ./rnnlab-optuna.journal

A paper-sized sweep (``*.paper.yaml``) found in the same storage is reported beside its CPU
profile; the page names the ones not run yet. The example sweeps ``experiments/forecast.yaml``
and ``experiments/chars.yaml``, run into the same storage, give a descriptive section on real
sequences. The work is done by the package beside this script, docs/replication/ (its
``__init__`` maps the modules); this file parses the command line and re-exports what
tests/test_replications.py uses: the reader :func:`load`, ``STEMS``, and the pure functions
:func:`divergence_rate`, :func:`init_ratios` and :func:`copy_baseline`. Two investigations are
not sweeps: :func:`replication.gradflow.batchnorm_mechanism` rebuilds the gradflow profile's tanh
RNN with rnnlab's model and probe (one forward and backward pass per seed) to separate the two
effects of batch-norm's gamma, and :func:`replication.changes.init_start` measures the IRNN and
IndRNN of adding-relu.yaml at initialisation with either input initialisation; each takes a few
seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# The package lives beside this script, which runs as a file (``python docs/make_results.py``)
# or is loaded from its path by the tests, never from an installed package.
DOCS = Path(__file__).resolve().parent
if str(DOCS) not in sys.path:
    sys.path.insert(0, str(DOCS))

from replication.clipping import divergence_rate  # noqa: E402
from replication.copy_memory import copy_baseline  # noqa: E402
from replication.figures import FIGURES  # noqa: E402
from replication.gradflow import init_ratios  # noqa: E402
from replication.page import PAGE, build_page  # noqa: E402
from replication.reader import ROOT, STEMS, Sweep, Trial, load  # noqa: E402

__all__ = ["STEMS", "Sweep", "Trial", "copy_baseline", "divergence_rate", "init_ratios", "load"]


def main(argv: list[str] | None = None) -> int:
    """Read every sweep in ``--storage``, write the page and its figures; 2 if there is none."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--storage",
        default=os.path.join(os.getcwd(), "rnnlab-optuna.journal"),
        help="Optuna storage of the sweeps (default: ./rnnlab-optuna.journal)",
    )
    parser.add_argument("--tracking-uri", help="MLflow store (default: the one each sweep used)")
    args = parser.parse_args(argv)
    if "://" not in args.storage and not os.path.exists(args.storage):
        print(f"no sweeps: {args.storage} does not exist; run the profiles first", file=sys.stderr)
        return 2
    text = build_page(args.storage, args.tracking_uri)
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)} and {FIGURES.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
