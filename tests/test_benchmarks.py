"""The benchmark suite runs end to end at tiny sizes; timings never decide anything here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import report

ROOT = Path(__file__).resolve().parents[1]
ROW_KEYS = {"case", "value", "unit", "baseline", "baseline_label", "ratio", "target", "ok", "extra"}


def test_quick_startup_and_overhead_write_results_and_the_page(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--only", "startup", "overhead"]
        + ["--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("startup", "overhead"):
        result = json.loads((tmp_path / f"{name}.json").read_text())
        assert result["name"] == name and result["quick"] is True
        assert {"title", "method", "machine", "rows", "measured_at"} <= set(result)
        assert {"cpu", "cores", "versions", "date"} <= set(result["machine"])
        assert result["rows"]
        for row in result["rows"]:
            assert set(row) == ROW_KEYS
            assert row["value"] >= 0, row
            if row["ratio"] is not None:
                assert row["ratio"] > 0 and row["baseline"] > 0, row
    overhead = json.loads((tmp_path / "overhead.json").read_text())
    cpu_rows = [row for row in overhead["rows"] if not row["case"].endswith("(cuda)")]
    assert {row["case"] for row in cpu_rows} == {"rnn T=20", "lstm T=20", "gru T=20"}
    assert all(row["value"] > 0 for row in overhead["rows"])
    rows = json.loads((tmp_path / "startup.json").read_text())["rows"]
    startup = {row["case"]: row for row in rows}
    assert startup["rnnlab --help"]["value"] > 0 and startup["mlflow --help"]["value"] > 0
    page = (tmp_path / "performance.md").read_text()  # --out: the published page is untouched
    assert "## Machine" in page and "| rnnlab --help |" in page and "| lstm T=20 |" in page


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_gpu_script_without_cuda_says_so_and_runs_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--copy-to", str(tmp_path / "out")],
        cwd=tmp_path,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "sees no CUDA GPU" in done.stderr and "no benchmark ran" in done.stderr
    assert "running" not in done.stdout and not (tmp_path / "out").exists()
    runner = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--device", "cuda", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert runner.returncode == 3 and "sees none" in runner.stderr, runner.stderr
    assert not list(tmp_path.glob("*.json"))


def test_device_applies_only_to_the_benchmarks_with_gpu_cases() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--device", "cpu", "--only", "startup"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "startup has no cases per device" in done.stderr


def test_the_gpu_page_has_its_own_intro_and_the_cpu_page_points_to_it() -> None:
    machine = {
        "cpu": "x",
        "cores": 16,
        "usable_cores": 16,
        "memory_gib": 128,
        "gpu": "NVIDIA H200",
        "os": "Linux",
        "versions": dict.fromkeys(("python", "torch", "mlflow", "optuna", "numpy", "rnnlab"), "1"),
    }
    base = {"name": "fused", "title": "t", "method": "m", "quick": False, "seconds": 1.0}
    base |= {"measured_at": "2026-01-01T00:00:00+00:00", "other_processes_cpu_share": 0.0}
    base |= {"machine": machine, "rows": [], "notes": []}
    gpu_page = report.render([{**base, "devices": ["cuda"]}])
    assert gpu_page.startswith("# Performance on a GPU") and "performance.md" in gpu_page
    cpu_page = report.render([{**base, "devices": ["cpu", "cuda"]}])
    assert cpu_page.startswith("# Performance\n") and "## On a GPU" in cpu_page
    assert "benchmarks/gpu.sh" in cpu_page and "docs/performance-gpu.md" in cpu_page
