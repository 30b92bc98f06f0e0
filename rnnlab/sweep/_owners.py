"""Who runs a trial: its owner (``host:pid`` of the coordinator) and whether that one is alive."""

from __future__ import annotations

import datetime
import os
import socket

from optuna.trial import FrozenTrial

from rnnlab._names import OWNER

UNCLAIMED_GRACE_S = 10.0  # a RUNNING trial with no owner this long after its start is abandoned


def this_host() -> str:
    return socket.gethostname()


def owner_id() -> str:
    return f"{this_host()}:{os.getpid()}"


def abandoned(trial: FrozenTrial, by_pid: bool) -> bool:
    """A RUNNING trial nobody will finish: asked for but never claimed (no owner some seconds
    after it started), or, when ``by_pid`` (the journal file: one machine), owned by a process
    of this host that is gone. With a database storage the owners' heartbeats decide instead:
    a host name and a pid do not identify a process across machines and containers."""
    owner = str(trial.user_attrs.get(OWNER, ""))
    if owner:
        return by_pid and not _alive(owner)
    started = trial.datetime_start
    if started is None:
        return True
    return (datetime.datetime.now() - started).total_seconds() > UNCLAIMED_GRACE_S


def _alive(owner: str) -> bool:
    """Whether the coordinator that owns a RUNNING trial may still run it: False when it was a
    process on this host that is gone (or had our pid before us); True when it cannot be told."""
    host, _, pid = owner.rpartition(":")
    if host != this_host() or not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
