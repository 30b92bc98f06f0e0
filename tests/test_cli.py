"""The real command line, through click's CliRunner and as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnnlab.cli import cli
from tests.conftest import TINY


def _rnnlab(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from rnnlab.cli import main; main()", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``code`` run by this interpreter in a fresh process (its output captured)."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)


def test_help_imports_no_torch_mlflow_or_optuna(tmp_path: Path) -> None:
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('HEAVY', sorted(m for m in ('torch', 'mlflow', 'optuna', "
        "'pydantic') if m in sys.modules), file=sys.stderr))\n"
        "from rnnlab.cli import main\n"
        "main(['--help'])\n"
    )
    done = _python(probe, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stderr
    assert "run" in done.stdout and "plugins" in done.stdout


def test_exit_collects_garbage_then_freezes_what_lives(tmp_path: Path) -> None:
    """The console script ends by collecting the garbage that exists (a finalizer in a
    reference cycle still runs: a file in a cycle is flushed) and freezing the rest out of the
    interpreter's final collections (issue 21: 1.3-1.8 s of every command's exit)."""
    probe = (
        "import atexit, gc, sys\n"
        "class Cycle:\n"
        "    def __del__(self):\n"
        "        print('FINALIZED', file=sys.stderr)\n"
        "a, b = Cycle(), Cycle()\n"
        "a.other, b.other = b, a\n"
        "del a, b\n"
        "gc.disable()  # only rnnlab's exit may collect the cycle\n"
        "atexit.register(lambda: print('FROZEN', gc.get_freeze_count() > 0, file=sys.stderr))\n"
        "from rnnlab.cli import main\n"
        "main(['--version'])\n"
    )
    done = _python(probe, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "FROZEN True" in done.stderr
    assert "FINALIZED" in done.stderr, "the cycle's finalizer never ran"
    finalized, frozen = done.stderr.index("FINALIZED"), done.stderr.index("FROZEN")
    assert finalized < frozen  # collected before the freeze, not at teardown


def test_run_as_a_subprocess_records_to_mlflow(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text(TINY)
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    done = _rnnlab(
        "run", "run.yaml", "--set", "cell.name=gru", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri}
    )
    assert done.returncode == 0, done.stderr
    assert "completed after 6 steps" in done.stdout and "val/loss" in done.stdout
    assert "mlflow ui --backend-store-uri " + uri in done.stdout

    from mlflow import MlflowClient

    runs = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("tiny").experiment_id]
    )
    assert [r.info.run_name for r in runs] == ["gru+clip adding T=12 s0"]


def test_default_store_is_mlflow_db_in_the_working_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text(TINY)
    result = CliRunner().invoke(cli, ["run", "run.yaml", "--set", "train.steps=2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mlflow.db").exists()
    assert "completed after 2 steps" in result.output


def test_no_track_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text(TINY)
    result = CliRunner().invoke(cli, ["run", "run.yaml", "--no-track"])
    assert result.exit_code == 0, result.output
    assert "completed after 6 steps" in result.output and "not tracked" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"]


@pytest.mark.parametrize(
    ("text", "args", "expected"),
    [
        (TINY + "extra: 1\n", [], "line 7, key extra: unknown key 'extra'"),
        (TINY.replace("name: lstm", "name: lstmm"), [], "Did you mean 'lstm'?"),
        (
            TINY.replace("steps: 6", "steps: six"),
            [],
            "key train.steps: Input should be a valid integer",
        ),
        ("dataset: {name: adding\n", [], "malformed YAML"),
        (TINY, ["--set", "cell.hidden_size=-3"], "--set cell.hidden_size=-3, key cell.hidden_size"),
        (TINY.replace("[clip]", "[relu]"), [], "remedy 'relu' is incompatible with cell 'lstm'"),
        (
            TINY.replace(
                "{name: adding, seq_len: 12, val_size: 64}", "{name: mnist, root: nowhere}"
            ),
            [],
            "nowhere",
        ),
    ],
    ids=[
        "unknown-key",
        "unknown-plugin",
        "wrong-type",
        "malformed",
        "override",
        "incompatible",
        "missing-data",
    ],
)
def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(
    tmp_path: Path, monkeypatch, text: str, args: list[str], expected: str
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text(text)
    result = CliRunner().invoke(cli, ["run", "run.yaml", *args])
    assert result.exit_code == 2, result.output
    assert "Error: " in result.output and expected in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"]  # no half-written state


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    done = _rnnlab("run", "missing.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert "missing.yaml: file not found" in done.stderr and "Traceback" not in done.stderr


def test_diverged_run_exits_0_and_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = TINY.replace("lstm", "rnn").replace("[clip]", "[{name: relu, scale: 1000.0}]")
    (tmp_path / "run.yaml").write_text(text)
    result = CliRunner().invoke(cli, ["run", "run.yaml", "--no-track"])
    assert result.exit_code == 0, result.output
    assert "diverged (NaN/Inf) at step 0" in result.output


def test_malformed_data_files_exit_2_before_any_run_is_recorded(
    tmp_path: Path, monkeypatch
) -> None:
    from tests.test_tasks import make_mnist

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    make_mnist(tmp_path / "mnist", gz=False)
    (tmp_path / "mnist" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01garbage")
    config = TINY.replace("{name: adding, seq_len: 12, val_size: 64}", "{name: mnist, root: mnist}")
    (tmp_path / "run.yaml").write_text(config)
    result = CliRunner().invoke(cli, ["run", "run.yaml", "--set", "dataset.val_size=5"])
    assert result.exit_code == 2, result.output
    assert "train-images-idx3-ubyte" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "mlflow.db").exists()
