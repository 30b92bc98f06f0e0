"""benchmarks/cudnn.py, the fused path against the probed loop on CUDA: it skips cleanly where
there is no GPU, runs wherever there is one, and its comparison fails for paths that differ."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rnnlab_cells.twins import LSTMCell

from benchmarks import cudnn

ROOT = Path(__file__).resolve().parents[1]


def test_the_check_runs_on_a_gpu_and_skips_cleanly_without_one(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cudnn", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    if torch.cuda.is_available():
        assert "cuDNN check passed" in done.stdout and (tmp_path / "cudnn.json").exists()
    else:
        assert "cuDNN check skipped: torch sees no CUDA GPU" in done.stdout
        assert not (tmp_path / "cudnn.json").exists()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_comparison_passes_equal_paths_and_fails_different_ones(
    dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu = torch.device("cpu")  # the same comparison as on CUDA, where both paths are torch's
    assert cudnn.case("lstm", {}, dtype, cpu)["ok"]
    fused = LSTMCell.forward_fused

    def off_by_a_little(self, x, state):  # type: ignore[no-untyped-def]
        out, last = fused(self, x, state)
        return out * (1 + 1e-4), last

    monkeypatch.setattr(LSTMCell, "forward_fused", off_by_a_little)
    result = cudnn.case("lstm", {}, dtype, cpu)
    assert not result["ok"] and result["max_abs_diff"]["outputs"] > 0
