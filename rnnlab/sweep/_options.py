"""How a sweep runs, beside its plan: the stores it uses, a fresh start, the heartbeat.

Light on purpose (no optuna, no torch): ``rnnlab ui`` reads the default storage from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def default_storage() -> str:
    """The embedded default: an Optuna journal file in the working directory (no server)."""
    return os.path.join(os.getcwd(), "rnnlab-optuna.journal")


@dataclass(frozen=True)
class SweepOptions:
    """The command line's say in a sweep (``rnnlab sweep`` options; defaults as there).

    Attributes:
        storage: Optuna storage URL or ``*.journal`` file (``--storage``).
        tracking_uri: MLflow tracking URI (``--tracking-uri``); None: MLflow's default.
        fresh: start a new study even if the sweep exists (``--fresh``).
        heartbeat: seconds between heartbeats on a database storage (``--heartbeat``).
    """

    storage: str = field(default_factory=default_storage)
    tracking_uri: str | None = None
    fresh: bool = False
    heartbeat: int | None = None
