"""``rnnlab report``: one self-contained HTML page (plus PNGs and markdown) for a sweep.

Built from the sweep's Optuna study and MLflow runs alone, for a finished or a running sweep, and
logged as artifacts (``report/``) of the sweep's parent run.
"""

from __future__ import annotations

import base64
import datetime
import html
from functools import partial
from pathlib import Path

from rnnlab._names import (
    REPORT_FIGURES,
    REPORT_FOLDER,
    REPORT_LYAPUNOV_SCATTER,
    REPORT_PAGE,
    REPORT_SPECTRA,
    TABLE_MD,
    VAL_LOSS,
    ui_links,
)
from rnnlab.report import _dynamics_figures as dynamicsplots
from rnnlab.report import _figures as reportplots
from rnnlab.report._data import ReportData
from rnnlab.report._drawing import Job, draw_all, inputs_digest, remember, reusable
from rnnlab.report._findings import HEALTHY, TOLERANCE, VANISHED, sweep_findings
from rnnlab.report._uilinks import run_links_base
from rnnlab.sweep import table_cells, table_header, table_markdown

HEATMAP, FLOW, RATIO, LEARNING, IMPORTANCES = REPORT_FIGURES
FIGURES: tuple[tuple[str, str], ...] = (
    (HEATMAP, "The objective, mean over seeds, for every combination."),
    (
        FLOW,
        "||dL_target/dh_t|| against t (log axis) at the first probe (blue) and the last "
        "(vermillion), L_target the loss of the task's target steps alone (the steps that need "
        "memory): thin lines are seeds, bold their geometric mean; dashed, ||dL/dh_t|| of the "
        "whole loss (the same curve on a last-step task). A curve falling to the left is a "
        "vanishing gradient; a flat one reaches the first steps.",
    ),
    (
        RATIO,
        "log10 ||dL_target/dh_1|| / ||dL_target/dh_T|| against training step (mean over seeds; "
        "dotted: the same of the whole loss L): how many orders of magnitude the target's "
        "gradient loses across the sequence.",
    ),
    (
        LEARNING,
        "The objective on validation data against training step (mean over seeds).",
    ),
    (IMPORTANCES, "Optuna's parameter importances for the objective."),
)
FIGURES = (*FIGURES, *dynamicsplots.FIGURES)  # the Lyapunov spectra (issue 19)


def figure_jobs(data: ReportData, out: Path) -> list[tuple[Job, int]]:
    """Every figure of the page as a job drawing its PNG into ``out`` (in the page's order),
    with its weight: the panels it draws (the heaviest is started first)."""
    metric = data.plan.section.objective.metric
    have = dynamicsplots.read_spectra(data)
    panels = len(data.table) or 1
    ratio = ("target_ratio", "target log10 ratio (dotted: total)")
    return [
        (partial(reportplots.objective_heatmap, data, out / HEATMAP), 2),
        (partial(reportplots.flow_grid, data, out / FLOW), panels),
        (partial(reportplots.history_panels, data, out / RATIO, *ratio, dashed="ratio"), 3),
        (
            partial(
                reportplots.history_panels,
                data,
                out / LEARNING,
                "objective",
                metric,
                log=metric == VAL_LOSS,
            ),
            3,
        ),  # fmt: skip
        (partial(reportplots.importances, data, out / IMPORTANCES), 1),
        (partial(dynamicsplots.spectra_grid, data, have, out / REPORT_SPECTRA), panels),
        (partial(dynamicsplots.lyapunov_scatter, data, have, out / REPORT_LYAPUNOV_SCATTER), 2),
    ]


def draw(data: ReportData, out: Path, processes: int | None = None) -> list[Path]:
    """Every figure that applies to this sweep, as PNGs in ``out``: kept when ``out`` holds
    them drawn from the same inputs (:func:`rnnlab.report._drawing.inputs_digest`), else drawn
    in ``processes`` processes (default: one per core; 1: in this one)."""
    digest = inputs_digest(data)
    kept = reusable(out, digest)
    if kept is not None:
        return kept
    jobs = figure_jobs(data, out)
    made = draw_all([j for j, _ in jobs], processes, [w for _, w in jobs])
    figures = [p for p in made if p is not None]
    remember(out, digest, figures)
    return figures


def _status(data: ReportData) -> str:
    done = len(data.trials)
    if data.running:
        return (
            f"Still running: {done} of {data.total} trials finished, {data.unfinished} "
            "queued or running. Run the report again for the rest."
        )
    return f"Finished: all {data.total} trials done."


def _table(data: ReportData) -> str:
    axes = data.axes
    names = table_header(data.plan)
    maximize = data.plan.section.objective.direction == "maximize"
    # the best mean within each group of the settings after the first two is highlighted
    best: dict[tuple[str, ...], float] = {}
    for row in data.table:
        if row["mean"] is not None:
            group = tuple(row[a] for a in axes[2:])
            current = best.get(group)
            if current is None or (row["mean"] > current if maximize else row["mean"] < current):
                best[group] = row["mean"]
    lines = [
        "<table><thead><tr><th>row</th>"
        + "".join(f"<th>{html.escape(n)}</th>" for n in names)
        + "<th>MLflow runs</th></tr></thead><tbody>"
    ]
    ui = run_links_base(data.tracking_uri, [data.parent_run_id, *(t.run_id for t in data.trials)])
    for number, row in enumerate(data.table, 1):
        group = tuple(row[a] for a in axes[2:])
        mark = ' class="best"' if row["mean"] is not None and best.get(group) == row["mean"] else ""
        cells = "".join(f"<td>{html.escape(c)}</td>" for c in table_cells(data.plan, row))
        runs = _run_links(data, row, ui)
        lines.append(f'<tr id="row-{number}"{mark}><td>{number}</td>{cells}<td>{runs}</td></tr>')
    return "\n".join([*lines, "</tbody></table>"])


def _run_links(data: ReportData, row: dict[str, object], ui: str | None) -> str:
    """The row's trials' child runs: links into MLflow's UI, or their ids."""
    axes = data.axes
    key = tuple(str(row[a]) for a in axes)
    links = []
    for trial in data.trials:
        if trial.combination(axes) != key or not trial.run_id:
            continue
        text = html.escape(f"{trial.run_id[:8]} (s{trial.seed})")
        experiment = getattr(getattr(trial.run, "info", None), "experiment_id", None)
        if ui is None or experiment is None:
            links.append(f'<span title="{html.escape(trial.run_id)}">{text}</span>')
        else:
            url = ui_links(ui, str(experiment), trial.run_id)[1]
            links.append(f'<a href="{html.escape(str(url))}">{text}</a>')
    return " ".join(links)


def _findings(data: ReportData) -> str:
    """The findings in words, each linking to its table row."""
    found = sweep_findings(data)
    if not found:
        return "<p>No findings: the table has no row the rules apply to.</p>"
    items = "".join(
        f'<li>{html.escape(f.text)} <a href="#row-{f.row + 1}">(row {f.row + 1})</a></li>'
        for f in found
    )
    return f'<ul class="findings">{items}</ul>'


def _figure(path: Path, caption: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(path.stem.replace("_", " "))
    return (
        f'<figure><img src="data:image/png;base64,{encoded}" alt="{alt}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1400px; color: #111; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } td:first-child, td:nth-child(2) { text-align: left; }
tr.best td { background: #cde8d8; font-weight: bold; }
figure { margin: 1.5em 0; } img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #333; max-width: 60em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
.status { padding: 0.5em 1em; background: #fff3cd; display: inline-block; }
"""


def render(data: ReportData, figures: list[Path]) -> str:
    """The report as one HTML document with every figure embedded."""
    section = data.plan.section
    captions = dict(FIGURES)
    versions = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
        for k, v in data.versions.items()
    )
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>rnnlab report: {html.escape(data.study.study_name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Sweep {html.escape(data.study.study_name)}</h1>",
        f'<p class="status">{html.escape(_status(data))}</p>',
        f"<p>Objective: {section.objective.direction} {html.escape(section.objective.metric)}; "
        f"sampler {section.sampler}; seeds {section.seeds}; generated {when}; MLflow "
        f"{html.escape(data.tracking_uri)}, "
        f"parent run {html.escape(data.parent_run_id or '-')}.</p>",
        "<h2>Outcomes</h2>",
        _table(data),
        "<p>Highlighted: the best mean in each group of the other settings; (n of m): only n of "
        "the row's m trials completed, and the mean is theirs. Target log10 ratio: the mean over "
        "the row's trials of log10 ||dL_target/dh_1|| / ||dL_target/dh_T|| at their last probe, "
        "L_target the loss of the task's target steps alone; total log10 ratio: the same of the "
        "whole loss L (equal on last-step tasks).</p>",
        "<p>lambda max: the mean over the row's trials of the top layer's largest Lyapunov "
        "exponent after the last update (dyn/lyapunov_max, nats per time step); below 0 the "
        "dynamics contract and the gradient vanishes with them.</p>",
        "<h2>Findings</h2>",
        _findings(data),
        f"<p>By the rules of docs/report.md: a cell fails a task setting when its row without "
        f"remedies is within {TOLERANCE:.0%} of the task's trivial baseline or worse; a remedy "
        "rescues it when every seed beats the baseline by more than that; it makes things worse "
        f"when its mean is more than {TOLERANCE:.0%} worse than without it; the target gradient "
        f"and the outcome disagree when a row beats the baseline with a target log10 ratio "
        f"below {VANISHED:g}, or fails with one above {HEALTHY:g}.</p>",
        "<h2>Figures</h2>",
        *(_figure(p, captions.get(p.name, "")) for p in figures),
        "<h2>The sweep file</h2>",
        f"<pre>{html.escape(data.sweep_file)}</pre>",
        "<h2>Versions</h2>",
        f"<table>{versions}</table>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write(
    data: ReportData, out: Path, log_to_parent: bool = True, processes: int | None = None
) -> Path:
    """Write report.html, the PNGs and summary.md to ``out``; log them to the parent run.
    ``processes``: drawing processes (:func:`draw`)."""
    out.mkdir(parents=True, exist_ok=True)
    figures = draw(data, out, processes)
    page = out / REPORT_PAGE
    page.write_text(render(data, figures), encoding="utf-8")
    status = f"\n{_status(data)}\n"
    (out / TABLE_MD).write_text(table_markdown(data.plan, data.table) + status)
    if log_to_parent and data.parent_run_id:
        from mlflow import MlflowClient

        MlflowClient(data.tracking_uri).log_artifacts(data.parent_run_id, str(out), REPORT_FOLDER)
    return page
