"""Regenerate docs/report-screenshot.png: the top of a real report, as headless Chromium shows it.

    python docs/make_screenshot.py          # about a minute on a 2-core CPU

In a temporary folder it runs a small sweep (tanh RNN, LSTM and GRU, each without a remedy, with
gradient clipping and with gating, on the adding problem at T=30; 2 seeds, 300 steps), writes its
report with ``rnnlab report`` and photographs report.html with Debian's Chromium
(``apt-get install chromium``; ``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE / "report-screenshot.png"
SIZE = (1400, 1800)

SWEEP = """\
# The question of the flagship sweep, made small: which remedy lets gradients reach t = 1?
name: vanishing-small
seed: 0
dataset: {name: adding, seq_len: 30, val_size: 256}
cell: {name: rnn, hidden_size: 32}
remedies: []
train: {steps: 300, batch_size: 64, optimizer: adam, lr: 1.0e-2, eval_every: 50,
        probe_every: 50, log_every: 10, device: cpu}
sweep:
  sampler: grid
  seeds: [0, 1]
  objective: {metric: val/loss, direction: minimize}
  workers: 2
  space:
    cell.name: [rnn, lstm, gru]
    remedies: [[], [clip], [gating]]
"""

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
)


def rnnlab(*args: str, cwd: Path, env: dict[str, str], timeout: float) -> None:
    """Run the rnnlab command line of this Python, as a user would in ``cwd``."""
    command = [sys.executable, "-c", "import sys; from rnnlab.cli import main; main(sys.argv[1:])"]
    print("$ rnnlab", " ".join(args), flush=True)
    subprocess.run([*command, *args], cwd=cwd, env=env, check=True, timeout=timeout)


def screenshot(page: Path, target: Path, size: tuple[int, int] = SIZE) -> None:
    """The top ``size`` pixels of ``page`` as headless Chromium draws them, into ``target``."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        sys.exit("no chromium on PATH: apt-get install chromium (.ci/run installs it)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        shot = Path(profile) / "shot.png"
        result = subprocess.run(
            [
                binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}",
                "--virtual-time-budget=5000",
                f"--screenshot={shot}",
                page.resolve().as_uri(),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0 or not shot.exists():
            sys.exit(f"chromium failed ({result.returncode}):\n{result.stderr[-3000:]}")
        shutil.copyfile(shot, target)


def main() -> None:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rnnlab-screenshot-") as folder:
        work = Path(folder)
        (work / "vanishing-small.yaml").write_text(SWEEP)
        env = dict(os.environ, MPLBACKEND="Agg")
        env.pop("MLFLOW_TRACKING_URI", None)  # the default store, ./mlflow.db, as a user has it
        rnnlab("sweep", "vanishing-small.yaml", cwd=work, env=env, timeout=900)
        rnnlab("report", "vanishing-small.yaml", cwd=work, env=env, timeout=300)
        screenshot(work / "reports" / "vanishing-small" / "report.html", TARGET)
    print(f"wrote {TARGET} in {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
