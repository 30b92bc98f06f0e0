"""Opening a sweep's Optuna journal file, with a torn last record recovered (issue 18).

Optuna's journal (``JournalFileBackend``) appends each batch of records as one ``write`` of
newline-terminated JSON lines, under its lock file (``FILE.lock``), and fsyncs. A crash in the
middle of an append, a full disk or a network filesystem can leave the last line cut short; such
a record was never acknowledged to anyone (optuna#5138). Optuna then either skips it silently or,
once the next append lands on the same line, fails every later read with a ``JSONDecodeError``.

:func:`open_journal` (the one way ``rnnlab sweep``, ``rnnlab report`` and ``rnnlab ui`` open a
journal) checks every line first. The rule for concurrency: a bad last line seen without the lock
may be an append in progress, so nothing is judged until the lock is held (Optuna's own lock, so
no writer can be half way through) and the file has been read again. Then

* a bad last line is a torn record: the original is copied to ``FILE.torn-<UTC time>``, the file
  is cut back to its complete records, and a warning says what was dropped (its operation and
  trial) and that a trial whose last record was lost has no outcome and runs again;
* a bad line before the last is corruption that cutting cannot undo: a copy is kept as
  ``FILE.corrupt-<UTC time>`` and :class:`~rnnlab.errors.StorageError` names the file, the line
  and the copy, and how to go on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import traceback

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.storages.journal._storage import JournalOperation

from rnnlab.errors import StorageError


def _first_bad_line(data: bytes) -> tuple[int, int] | None:
    """(0-based line number, byte offset) of the first line that is not a complete JSON
    record, or None when every line is one."""
    offset = 0
    for number, line in enumerate(data.splitlines(keepends=True)):
        if not line.endswith(b"\n"):
            return number, offset
        try:
            json.loads(line)
        except ValueError:
            return number, offset
        offset += len(line)
    return None


def _describe(fragment: bytes, kept: bytes) -> str:
    """What a torn record was, from what is left of it (its operation and trial, when legible),
    and what becomes of its trial."""
    text = fragment.decode("utf-8", "replace")
    op = re.search(r'"op_code"\s*:\s*(\d+)', text)
    trial = re.search(r'"trial_id"\s*:\s*(\d+)', text)
    what = "a record"
    if op and int(op.group(1)) in JournalOperation._value2member_map_:
        what = f"a {JournalOperation(int(op.group(1))).name.lower()} record"
    if trial is None:
        return (
            f"{what} (its trial not legible). A trial that has no outcome in the records kept "
            "runs again on the next rnnlab sweep"
        )
    number = trial.group(1)
    outcome = re.search(
        rb'"trial_id":' + number.encode() + rb',"user_attr":\{"rnnlab\.outcome":"(\w+)"', kept
    )
    if outcome:
        return (
            f"{what} of trial id {number}, whose outcome ({outcome.group(1).decode()}) was "
            "recorded before it: its result stays and it does not run again"
        )
    return f"{what} of trial id {number}, which has no outcome and runs again on the next sweep"


def _backup(path: str, kind: str) -> str:
    backup = f"{path}.{kind}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    shutil.copy2(path, backup)
    return backup


def check_journal(path: str) -> None:
    """Recover a torn last record of journal ``path``, or raise StorageError for a corrupt
    earlier one (the module docstring has the rule)."""
    if not os.path.exists(path):
        return
    with open(path, "rb") as f:
        if _first_bad_line(f.read()) is None:
            return  # the usual case: nothing to judge, no lock taken
    lock = JournalFileSymlinkLock(path)
    lock.acquire()
    try:
        with open(path, "rb") as f:
            data = f.read()
        bad = _first_bad_line(data)
        if bad is None:
            return  # it was an append in progress
        number, offset = bad
        lines = data.splitlines(keepends=True)
        if number < len(lines) - 1:
            backup = _backup(path, "corrupt")
            raise StorageError(
                f"{path}: line {number + 1} of {len(lines)} is not a complete Optuna journal "
                f"record, and records follow it, so this is not a torn last write that can be "
                f"cut off. The file is left as it is; a copy is kept as {backup}. To keep the "
                f"{number} records before it: `head -n {number} {path} > {path}.fixed && mv "
                f"{path}.fixed {path}` (the trials after them run again); or move {path} away "
                "to start the sweep over."
            )
        backup = _backup(path, "torn")
        os.truncate(path, offset)
        dropped = _describe(data[offset:], data[:offset])
        sys.stderr.write(
            f"rnnlab: {path} ended in a torn record (line {number + 1}, {len(data) - offset} "
            "bytes that are not a complete JSON record: an append cut short by a crash, a full "
            f"disk or a network filesystem, never acknowledged). Dropped {dropped}. "
            f"The original file is kept as {backup}.\n"
        )
    finally:
        lock.release()


def journal_error(path: str, exc: BaseException) -> StorageError | None:
    """The message for an OSError of Optuna's journal code on ``path`` (a full disk, a folder
    that went away or is not writable), or None for anything else."""
    if not isinstance(exc, OSError):
        return None
    inside = os.path.join("optuna", "storages", "journal")
    frames = traceback.extract_tb(exc.__traceback__)
    if not any(inside in frame.filename for frame in frames):
        return None
    where = exc.filename or path
    return StorageError(
        f"could not write the Optuna journal {path} ({where}): {exc.strerror or exc}. Free "
        "space there or make the folder writable (or pass --storage another path), then run "
        "the same command again: a record cut short is repaired then, and the trials that were "
        "running run again."
    )


def open_journal(path: str) -> optuna.storages.JournalStorage:
    """Optuna's journal storage on ``path``, after :func:`check_journal`; a file that cannot
    be created is a :class:`~rnnlab.errors.StorageError` (:func:`journal_error`)."""
    check_journal(path)
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    except OSError as exc:
        error = journal_error(path, exc)
        if error is None:
            raise
        raise error from exc
