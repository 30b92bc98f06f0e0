"""The benchmark suite runs end to end at tiny sizes; timings never decide anything here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    assert {row["case"] for row in overhead["rows"]} == {"rnn T=20", "lstm T=20", "gru T=20"}
    assert all(row["value"] > 0 for row in overhead["rows"])
    rows = json.loads((tmp_path / "startup.json").read_text())["rows"]
    startup = {row["case"]: row for row in rows}
    assert startup["rnnlab --help"]["value"] > 0 and startup["mlflow --help"]["value"] > 0
    page = (tmp_path / "performance.md").read_text()  # --out: the published page is untouched
    assert "## Machine" in page and "| rnnlab --help |" in page and "| lstm T=20 |" in page
