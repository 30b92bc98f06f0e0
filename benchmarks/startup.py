"""7. Start-up: ``rnnlab --help`` and ``rnnlab plugins`` against ``mlflow/optuna --help``.

Each command is a fresh process started from its installed console script (next to this Python,
so no shell shim is timed), the commands taking turns; a bare ``python -c pass`` shows the
interpreter's own share. A separate process reports which heavy modules ``rnnlab --help`` imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks._timing import CpuShare, Row, child_env, interleave, median, result

NAME = "startup"
TITLE = "Start-up: rnnlab --help and rnnlab plugins vs mlflow --help and optuna --help"
HELP_TARGET_S = 0.3
PLUGINS_TARGET_S = 1.5
HEAVY = ("torch", "mlflow", "optuna")

IMPORTS = """
import json, sys
from rnnlab.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def script(name: str) -> str:
    """The console script ``name`` of this Python's environment (never a bare name from PATH:
    another installation there would be timed instead)."""
    schemes = [sysconfig.get_default_scheme(), f"{os.name}_user"]
    folders = [Path(sysconfig.get_path("scripts", scheme)) for scheme in schemes]
    folders.append(Path(sys.executable).parent)
    for folder in folders:
        if (folder / name).exists():
            return str(folder / name)
    looked = ", ".join(str(f) for f in dict.fromkeys(folders))
    raise FileNotFoundError(f"{name} is not installed in {sys.executable}'s environment ({looked})")


def command_time(argv: list[str]) -> float:
    """Wall seconds of one run of ``argv`` (output discarded; a failure raises)."""
    start = time.perf_counter()
    subprocess.run(argv, env=child_env(), capture_output=True, check=True, timeout=120)
    return time.perf_counter() - start


def heavy_imports(*args: str) -> list[str]:
    """Which of torch, mlflow and optuna ``rnnlab <args>`` imports."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS.format(heavy=HEAVY), *args],
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return found


def run(quick: bool = False) -> dict[str, Any]:
    """Time the four commands (and bare Python), interleaved."""
    share, started = CpuShare(), time.perf_counter()
    reps = 1 if quick else 9  # quick: the smoke test of the suite (tests/test_benchmarks.py)
    commands = {
        "rnnlab --help": [script("rnnlab"), "--help"],
        "rnnlab plugins": [script("rnnlab"), "plugins"],
        "mlflow --help": [script("mlflow"), "--help"],
        "optuna --help": [script("optuna"), "--help"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    for argv in commands.values() if not quick else ():  # warm the file cache first
        command_time(argv)
    times = interleave({k: partial(command_time, argv) for k, argv in commands.items()}, reps)
    med = {name: median(values) for name, values in times.items()}
    help_imports, plugin_imports = heavy_imports("--help"), heavy_imports("plugins")
    rows = [
        Row(
            case="rnnlab --help",
            value=med["rnnlab --help"],
            unit="s",
            baseline=med["mlflow --help"],
            baseline_label="mlflow --help",
            ratio=med["rnnlab --help"] / med["mlflow --help"],
            target=f"< {HELP_TARGET_S:g} s",
            ok=med["rnnlab --help"] < HELP_TARGET_S,
            extra={"times": times["rnnlab --help"], "vs_optuna": med["optuna --help"]},
        ),
        Row(
            case="rnnlab --help imports torch / mlflow / optuna",
            value=len(help_imports),
            unit="modules",
            target="none",
            ok=not help_imports,
            extra={"imported": help_imports},
        ),
        Row(
            case="rnnlab plugins",
            value=med["rnnlab plugins"],
            unit="s",
            baseline=med["mlflow --help"],
            baseline_label="mlflow --help",
            ratio=med["rnnlab plugins"] / med["mlflow --help"],
            target=f"< {PLUGINS_TARGET_S:g} s",
            ok=med["rnnlab plugins"] < PLUGINS_TARGET_S,
            extra={"times": times["rnnlab plugins"], "imports": plugin_imports},
        ),
    ]
    for name in ("mlflow --help", "optuna --help", "python -c pass"):
        rows.append(Row(case=name, value=med[name], unit="s", extra={"times": times[name]}))
    method = (
        f"Wall time of a fresh process per command from its console script, {reps} rounds with "
        f"the commands taking turns{'' if quick else ' (after one warm-up round)'}, medians."
    )
    return result(NAME, TITLE, method, rows, quick=quick, share=share, started=started)
