"""``rnnlab report`` on real tiny sweeps: a self-contained page whose numbers are MLflow's."""

from __future__ import annotations

import re
import signal
import statistics
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from rnnlab.cli import cli
from tests.test_sweep import _start, _wait_for, child_runs, write


class Page(HTMLParser):
    """Collects what a browser would fetch, and the outcome table's rows."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("src"):
            self.sources.append(str(found["src"]))
        if found.get("href"):
            self.links.append(str(found["href"]))
        if tag == "tr":
            self._row = []
        if tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        if tag == "tr" and self._row:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


SWEEP = (
    "seeds: [0, 1]\nworkers: 2\nspace:\n  cell.name: [rnn, lstm]\n  remedies: [[], [clip], [relu]]"
)


def _findings(output: str) -> list[str]:
    """The findings a command printed: the lines after its "Findings" heading."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Findings (row N")), None)
    assert start is not None, f"no findings printed:\n{output}"
    return [line for line in lines[start + 1 :] if line.startswith("- ")]


def test_report_of_a_finished_sweep(sweep_env, tmp_path: Path) -> None:
    path = write(tmp_path, SWEEP + "\n", steps=8)
    swept = CliRunner().invoke(cli, ["sweep", str(path)])
    assert swept.exit_code == 0, swept.output
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["report", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Report: " in result.output and "mean ± std" in result.output
    # the sweep's end and the report print the same findings (issue 21); after 8 steps at
    # lr 0.01 the tanh RNN is nowhere near the adding problem's 1/6 baseline: it fails
    said = _findings(swept.output)
    assert said == _findings(result.output)
    assert any(s.startswith("- On this task: rnn fails: val/loss ") for s in said), said
    text = (out / "report.html").read_text()
    page = Page()
    page.feed(text)
    # self-contained: every image embedded, nothing fetched from anywhere
    assert page.sources and all(s.startswith("data:image/png;base64,") for s in page.sources)
    assert not [u for u in page.sources + page.links if re.match(r"(https?:)?//", u)]
    pngs = sorted(out.glob("*.png"))
    assert {p.name for p in pngs} == {
        "objective_heatmap.png",
        "gradient_flow.png",
        "log10_ratio.png",
        "learning_curves.png",
        "lyapunov_spectra.png",  # issue 19: every run records its dynamics
        "lyapunov_scatter.png",
    }
    assert len(page.sources) == len(pngs)
    for png in pngs:
        pixels = matplotlib.image.imread(png)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.std() > 0.01, png.name
    assert "Finished: all 12 trials done." in text
    assert "rnnlab" in text and "torch" in text and "name: sw" in text  # versions, sweep file
    # the table's numbers are those MLflow holds
    runs = child_runs(sweep_env["MLFLOW_TRACKING_URI"], "sw")
    final: dict[tuple[str, str], list[float]] = {}
    target: dict[tuple[str, str], list[float]] = {}
    lyapunov: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        if run.data.tags["rnnlab.outcome"] == "completed":
            key = (run.data.tags["rnnlab.cell"], run.data.tags["rnnlab.remedies"])
            final.setdefault(key, []).append(run.data.metrics["val/loss"])
            target.setdefault(key, []).append(run.data.metrics["grad/target/log10_ratio"])
            lyapunov.setdefault(key, []).append(run.data.metrics["dyn/lyapunov_max"])
            assert "test/loss" in run.data.metrics and run.data.tags["rnnlab.selection"] == "final"
    # each row: its number (the findings link to it), the table's cells, its MLflow runs
    numbered = [r for r in page.rows if len(r) > 5]
    assert [r[0] for r in numbered] == [str(i + 1) for i in range(len(numbered))]
    table = {(r[1], r[2]): r[1:-1] for r in numbered}
    assert len(table) == 6
    for (cell, remedies), values in final.items():
        row = table[(cell, "none" if remedies == "none" else remedies)]
        mean = float(row[2].split(" ± ")[0])
        assert mean == pytest.approx(statistics.fmean(values), rel=1e-3)
        assert float(row[4]) == pytest.approx(statistics.fmean(target[cell, remedies]), abs=0.051)
        mean_lambda = statistics.fmean(lyapunov[cell, remedies])  # lambda max, 3 decimals
        assert float(row[6]) == pytest.approx(mean_lambda, abs=5e-4)
        assert row[-5:] == ["2", "0", "0", "0", "0"]
    assert table[("lstm", "relu")][-1] == "2"  # incompatible
    # logged to the sweep's parent run
    parent = runs[0].data.tags["mlflow.parentRunId"]
    logged = {a.path for a in MlflowClient().list_artifacts(parent, "report")}
    assert {"report/report.html", "report/summary.md", "report/gradient_flow.png"} <= logged


def test_report_of_a_running_sweep_says_so(sweep_env, tmp_path: Path) -> None:
    path = write(tmp_path, "workers: 1\nseeds: [0, 1, 2]\nspace:\n  cell.fault: [slow]\n", steps=60)
    process = _start(sweep_env, ["sweep", str(path)], tmp_path)
    try:
        _wait_for(tmp_path, "sw", finished=1)
        result = CliRunner().invoke(cli, ["report", "sw", "--out", str(tmp_path / "r")])
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    assert result.exit_code == 0, result.output
    assert "still running" in result.output
    text = (tmp_path / "r" / "report.html").read_text()
    assert re.search(r"Still running: \d of 3 trials finished, \d+ queued or running", text)


def test_report_of_an_unknown_sweep(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["report", "nothing"])
    assert result.exit_code == 2 and "Error: no sweep 'nothing'" in result.output


def test_report_shows_importances_when_a_sampler_varied_ranges(sweep_env, tmp_path: Path) -> None:
    sweep = (
        "sampler: random\ntrials: 4\nworkers: 2\nspace:\n  cell.name: [rnn, gru]\n"
        "  train.lr: {low: 0.001, high: 0.1, log: true}\n"
    )
    path = write(tmp_path, sweep, steps=8)
    assert CliRunner().invoke(cli, ["sweep", str(path)]).exit_code == 0
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["report", "sw", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "importances.png").exists()
    page = Page()
    page.feed((out / "report.html").read_text())
    assert len(page.sources) == len(list(out.glob("*.png"))) == 7  # with the 2 of issue 19
    assert {r[1] for r in page.rows if len(r) > 5} <= {"rnn", "gru"}  # ranges are not columns
