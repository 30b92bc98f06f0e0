"""Make ``stores.tar.gz``: the sweep of ``sweep.yaml`` started by rnnlab as of commit a74de04
(before issue 16 moved the code into packages) and stopped after two trials, a third one in
flight (it ends ``stopped``). The test resumes it with today's code (tests/test_resume_old.py).

Run with the old code first on the path, in the folder the test rewrites (``OLD_ROOT``)::

    git worktree add /tmp/old a74de04
    rm -rf /tmp/rnnlab-old-sweep && mkdir /tmp/rnnlab-old-sweep
    cp tests/old_sweep/sweep.yaml /tmp/rnnlab-old-sweep/
    cd /tmp/rnnlab-old-sweep && MLFLOW_TRACKING_URI=sqlite:////tmp/rnnlab-old-sweep/mlflow.db \
        PYTHONPATH=/tmp/old:/tmp/old/plugins python /path/to/tests/old_sweep/make.py
    tar czf /path/to/tests/old_sweep/stores.tar.gz rnnlab-optuna.journal mlflow.db mlruns

It uses the old module paths on purpose (rnnlab.sweep.Sweep, rnnlab.sweepconfig, ...).
"""

from __future__ import annotations

import os
import sys
from typing import Any

OLD_ROOT = "/tmp/rnnlab-old-sweep"


def main() -> int:
    assert os.getcwd() == OLD_ROOT, f"run it in {OLD_ROOT}"
    from rnnlab.plugins import make_plugin_manager
    from rnnlab.sweep import Sweep, SweepInterrupted  # type: ignore[attr-defined]
    from rnnlab.sweepconfig import default_storage, load_sweep  # type: ignore[import-not-found]
    from rnnlab.workers import plan_slots  # type: ignore[import-not-found]

    registry = make_plugin_manager(strict=True).registry()
    plan = load_sweep("sweep.yaml", registry)
    slots = plan_slots(1, None, plan.total)
    holder: dict[str, Any] = {}

    def display(state: Any) -> None:  # stop once two are done and a third is training
        if state.done >= 2 and any(a.step > 0 for a in state.active.values()):
            holder["sweep"].interrupted = True

    holder["sweep"] = Sweep(plan, default_storage(), slots, None, False, display)
    try:
        holder["sweep"].run()
    except SweepInterrupted as exc:
        print(exc)
        return 0
    print("the sweep finished before it was stopped", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
