"""A sweep's Optuna journal with a torn last record, or corrupted before it (issue 18): a real
finished sweep, its journal cut as a crash mid-append leaves it, then the real CLI again."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from rnnlab._names import KEY, OUTCOME
from rnnlab.cli import cli
from rnnlab.errors import StorageError
from rnnlab.sweep._journal import check_journal

SWEEP = """\
name: sw
seed: 0
dataset: {name: adding, seq_len: 5, val_size: 16}
cell: {name: rnn, hidden_size: 4}
train: {steps: 3, batch_size: 4, lr: 0.01, eval_every: 3, probe_every: 3, log_every: 3,
  device: cpu, dynamics_every: 0}
sweep:
  workers: 1
  seeds: [0]
  space:
    train.lr: [0.01, 0.02]
"""


@pytest.fixture
def finished(sweep_env, tmp_path: Path) -> Path:
    """A finished two-trial sweep in ``tmp_path``; returns its journal."""
    path = tmp_path / "sw.yaml"
    path.write_text(SWEEP)
    result = CliRunner().invoke(cli, ["sweep", str(path)])
    assert result.exit_code == 0, result.output
    return tmp_path / "rnnlab-optuna.journal"


def keys_done(journal: Path) -> Counter[str]:
    backend = optuna.storages.journal.JournalFileBackend(str(journal))
    storage = optuna.storages.JournalStorage(backend)
    study = optuna.load_study(study_name="sw", storage=storage)
    trials = study.get_trials()
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    return Counter(t.user_attrs[KEY] for t in trials if OUTCOME in t.user_attrs)


def test_a_torn_outcome_record_is_dropped_and_its_trial_runs_again(finished: Path) -> None:
    lines = finished.read_bytes().splitlines(keepends=True)
    outcome = max(i for i, line in enumerate(lines) if b'"rnnlab.outcome"' in line)
    torn = b"".join(lines[:outcome]) + lines[outcome][: len(lines[outcome]) // 2]
    finished.write_bytes(torn)  # the crash: the outcome's append cut short, nothing after it

    report = CliRunner().invoke(cli, ["report", "sw.yaml", "--out", "report"])
    assert "torn record" in report.output and "runs again" in report.output, report.output
    assert "a set_trial_user_attr record" in report.output
    assert "Traceback" not in report.output
    backups = list(finished.parent.glob("rnnlab-optuna.journal.torn-*"))
    assert [b.read_bytes() for b in backups] == [torn]  # the original, kept next to it
    assert finished.read_bytes() == b"".join(lines[:outcome])  # the complete records

    result = CliRunner().invoke(cli, ["sweep", "sw.yaml"])
    assert result.exit_code == 0, result.output
    assert "torn record" not in result.output  # repaired once, by the first command
    assert keys_done(finished) == Counter({k: 1 for k in keys_done(finished)})
    assert len(keys_done(finished)) == 2


def test_a_torn_last_record_of_a_finished_sweep_is_dropped(finished: Path) -> None:
    data = finished.read_bytes()
    finished.write_bytes(data[:-40])  # the final state record, cut
    result = CliRunner().invoke(cli, ["sweep", "sw.yaml"])
    assert result.exit_code == 0, result.output
    assert "set_trial_state_values record of trial id 1, whose outcome (completed)" in result.output
    assert "does not run again" in result.output
    assert len(keys_done(finished)) == 2  # its outcome was complete: the result stays


def test_corruption_before_the_last_record_is_a_clear_error(finished: Path) -> None:
    lines = finished.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"op_code":4,"worker_id":"x","study_id"\n'  # line 3, not the last
    finished.write_bytes(b"".join(lines))
    for command in (["sweep", "sw.yaml"], ["report", "sw.yaml"], ["ui", "sw.yaml"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 1, (command, result.output)
        assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
        assert f"{finished}: line 3 of {len(lines)}" in result.output, result.output
        assert "rnnlab-optuna.journal.corrupt-" in result.output and "head -n 2" in result.output
    assert finished.read_bytes() == b"".join(lines)  # left as it was


def test_a_tail_being_appended_under_the_lock_is_not_cut(tmp_path: Path) -> None:
    """The rule for a live sweep: a bad last line is judged only under the journal's lock."""
    journal = tmp_path / "j.journal"
    record = b'{"op_code":0,"worker_id":"w","study_name":"s","directions":[1]}\n'
    journal.write_bytes(record + record[:20])  # an append half way through
    lock = optuna.storages.journal.JournalFileSymlinkLock(str(journal))
    lock.acquire()  # held by the writer
    checker = threading.Thread(target=check_journal, args=(str(journal),))
    checker.start()
    time.sleep(0.5)
    assert checker.is_alive()  # waiting for the lock, not cutting
    with open(journal, "ab") as f:
        f.write(record[20:])
    lock.release()
    checker.join(timeout=10)
    assert journal.read_bytes() == 2 * record
    assert not list(tmp_path.glob("j.journal.*-*"))


def test_check_journal_raises_storage_error_for_a_bad_middle_line(tmp_path: Path) -> None:
    journal = tmp_path / "j.journal"
    record = b'{"op_code":0,"worker_id":"w","study_name":"s","directions":[1]}\n'
    journal.write_bytes(record + b"{oops\n" + record)
    with pytest.raises(StorageError, match=r"j\.journal: line 2 of 3"):
        check_journal(str(journal))


def test_a_journal_that_cannot_be_written_is_a_message(sweep_env, tmp_path: Path) -> None:
    """A journal whose folder is a regular file: at the start (the real CLI: exit 1, no
    traceback), and in the middle of a sweep (a real journal backend whose folder is replaced
    after it was opened: what the coordinator turns into the same message)."""
    from rnnlab.sweep._journal import journal_error, open_journal

    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "sw.yaml").write_text(SWEEP)
    journal = tmp_path / "afile" / "sw.journal"
    result = CliRunner().invoke(cli, ["sweep", "sw.yaml", "--storage", str(journal)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert f"could not write the Optuna journal {journal}" in result.output, result.output
    assert "Not a directory" in result.output and "run the same command again" in result.output

    folder = tmp_path / "j"
    folder.mkdir()
    storage = open_journal(str(folder / "sw.journal"))
    folder.rename(tmp_path / "j-saved")
    folder.write_text("a full disk")
    with pytest.raises(OSError) as raised:
        storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "sw")
    error = journal_error(str(folder / "sw.journal"), raised.value)
    assert error is not None and "Not a directory" in str(error)
    elsewhere = OSError(28, "No space left on device")  # raised here, not by Optuna's journal
    assert journal_error("x.journal", elsewhere) is None
