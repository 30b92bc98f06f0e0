"""Who runs a trial: its owner (``host:pid`` of the coordinator) and whether that one is alive;
and each coordinator's scratch folder, which a later start removes once its owner is gone."""

from __future__ import annotations

import datetime
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

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


# -- a coordinator's scratch folder ---------------------------------------------------------------
SCRATCH_PREFIX = "rnnlab-sweep-"
"""``<tmp>/rnnlab-sweep-<host>-<pid>-<random>``: one coordinator's worker fault files and the
artifact copies its workers hand it (rnnlab.sweep._child); removed when it exits, and by a later
start on this host once that pid is gone (a SIGKILLed coordinator cannot remove its own)."""
LEGACY_PREFIX = "rnnlab-artifacts-"  # artifact copies of rnnlab before the scratch folder
LEGACY_AGE_S = 86400.0  # such a copy lived seconds; one a day old was leaked by a killed sweep


def scratch_folder() -> Path:
    """A new scratch folder for this coordinator, after removing those of dead coordinators."""
    remove_dead_scratch()
    host = this_host().replace(os.sep, "_").replace("-", "_")
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{host}-{os.getpid()}-"))


def remove_dead_scratch(root: Path | None = None) -> list[Path]:
    """Remove the scratch folders in ``root`` (the temporary folder) whose coordinator on this
    host is gone, and the old ``rnnlab-artifacts-*`` copies a day old; returns what went."""
    root = Path(tempfile.gettempdir()) if root is None else root
    host = this_host().replace(os.sep, "_").replace("-", "_")
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if name.startswith(f"{SCRATCH_PREFIX}{host}-"):
            pid = name[len(f"{SCRATCH_PREFIX}{host}-") :].split("-", 1)[0]
            dead = pid.isdigit() and not _pid_alive(int(pid))
        elif name.startswith(LEGACY_PREFIX):
            try:
                dead = time.time() - entry.stat().st_mtime > LEGACY_AGE_S
            except OSError:
                dead = False
        else:
            continue
        if dead and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _pid_alive(pid: int) -> bool:
    """Whether a process of this host has ``pid`` (True when that cannot be told)."""
    if pid == os.getpid():
        return True  # this process: its folder is not stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
