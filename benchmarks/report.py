"""docs/performance.md from the JSON results: the machine, then a table per benchmark.

Results measured on CUDA alone (``--device cuda``, benchmarks/gpu.sh) get the GPU page's intro.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ORDER = (
    "overhead",
    "fused",
    "probing",
    "denormals",
    "scaling",
    "tracking",
    "startup",
    "memory",
    "linear",
)

INTRO = """\
# Performance

What rnnlab costs next to the bare tools it builds on, measured by `benchmarks/` (issue 7).
Regenerate this page with `nox -s bench` (or `python -m benchmarks.run`; `--quick` for tiny
sizes, `--only NAME ...` for some of them). Each benchmark writes `benchmarks/results/NAME.json`
with every repetition; this page is generated from those files.

Timings are ratios against a baseline measured in the same run, the repetitions interleaved
(A, B, A, B, ...), each case in a fresh process, summarised by medians. The A/A controls of the
overhead and fused benchmarks (the baseline against an identical copy of itself) show this
machine's noise floor, a few percent; a miss within that of its target is a hint, not a verdict.

## On a GPU

`benchmarks/gpu.sh`, on a machine with a CUDA build of torch, measures the cases of benchmarks 1-3
and 5 on the GPU alone: rnnlab's training step against a hand-written loop on cuDNN, the fused
path against cuDNN, the cost of probing, and trials/hour of the flagship sweep with rnnlab's plan
(one slot per GPU) against two slots sharing the GPU and against the CPU cores. It writes
`benchmarks/results-gpu/` and `docs/performance-gpu.md`, never this page; where torch sees no GPU
it says so and exits with code 3 before anything runs.
"""

GPU_INTRO = """\
# Performance on a GPU

What rnnlab costs next to the bare tools it builds on, on CUDA: the GPU cases of benchmarks 1-3
and 5 of `benchmarks/` (issue 7), measured by `benchmarks/gpu.sh` (`python -m benchmarks.run
--device cuda --out benchmarks/results-gpu --doc docs/performance-gpu.md`). The CPU figures, and
how the benchmarks measure, are in [performance.md](performance.md).

As there, timings are ratios against a baseline measured in the same run, the repetitions
interleaved, each case in a fresh process, summarised by medians; on CUDA every clock is read after
`torch.cuda.synchronize()`, so a step's time holds its kernels. The A/A controls show the noise
floor; a miss within that of its target is a hint, not a verdict.
"""


def fmt(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (no exponent for everyday sizes)."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("pass" if ok else "**miss**")


def cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|")


def table(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "| case | measured | baseline | ratio | target | result |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        measured = f"{fmt(row['value'])} {row['unit']}"
        baseline = "-"
        if row.get("baseline") is not None:
            unit = row["unit"].split(" ")[0]  # "ms/step (mean)" -> "ms/step"
            baseline = f"{fmt(row['baseline'])} {unit} ({row['baseline_label']})"
        ratio = f"{row['ratio']:.3f}x" if row.get("ratio") is not None else "-"
        lines.append(
            f"| {cell(row['case'])} | {cell(measured)} | {cell(baseline)} | {ratio} "
            f"| {cell(row['target'] or '-')} "
            f"| {verdict(row['ok'])} |"
        )
    return lines


def machine_section(results: Sequence[dict[str, Any]]) -> list[str]:
    machine = results[0]["machine"]
    versions = machine["versions"]
    dates = sorted(r["measured_at"] for r in results)
    shares = [r["other_processes_cpu_share"] for r in results]
    known = [s for s in shares if s is not None]
    lines = [
        "## Machine",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"{fmt(machine['memory_gib'])} GiB memory; GPU: {machine['gpu'] or 'none'}",
        f"- {machine['os']}; Python {versions['python']}, torch {versions['torch']}, mlflow "
        f"{versions['mlflow']}, optuna {versions['optuna']}, numpy {versions['numpy']}, "
        f"rnnlab {versions['rnnlab']}",
        f"- measured {dates[0]} to {dates[-1]} (UTC)",
    ]
    if known:
        lines.append(
            f"- other processes used {100 * min(known):.0f}-{100 * max(known):.0f}% of the "
            "machine's CPU capacity during the benchmarks (per benchmark below): the cores were "
            "shared, so absolute times are noisy and only same-run ratios mean much"
            if max(known) >= 0.05
            else "- the machine was otherwise idle during the benchmarks"
        )
    if any(r["quick"] for r in results):
        lines.append("- **quick sizes** (`--quick`): figures are not representative")
    return [*lines, ""]


def summary(results: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["## Summary", "", "| benchmark | targets met | missed |", "|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| [{r['name']}](#{r['name']}) | failed to run | - |")
            continue
        judged = [row for row in r["rows"] if row["ok"] is not None]
        missed = [row["case"] for row in judged if not row["ok"]]
        lines.append(
            f"| [{r['name']}](#{r['name']}) | {len(judged) - len(missed)} of {len(judged)} "
            f"| {'; '.join(missed) or '-'} |"
        )
    return [*lines, ""]


def section(r: dict[str, Any]) -> list[str]:
    lines = [f'<a id="{r["name"]}"></a>', f"## {r['title']}" if "title" in r else f"## {r['name']}"]
    if "error" in r:
        return [*lines, "", "The benchmark failed:", "", "```", r["error"].strip(), "```", ""]
    share = r["other_processes_cpu_share"]
    took = f"Took {r['seconds']:.0f} s"
    if share is not None:
        took += f"; other processes used {100 * share:.0f}% of the CPU capacity meanwhile"
    lines += ["", f"{r['method']} {took}.", "", *table(r["rows"]), ""]
    lines += [f"- {note}" for note in r["notes"]]
    return [*lines, ""] if r["notes"] else lines


def render(results: Sequence[dict[str, Any]], extra: str = "") -> str:
    """The whole page for the given benchmark results (in :data:`ORDER`)."""
    ordered = sorted(results, key=lambda r: ORDER.index(r["name"]) if r["name"] in ORDER else 99)
    usable = [r for r in ordered if "machine" in r]
    gpu_only = bool(usable) and all(r.get("devices") == ["cuda"] for r in usable)
    lines = [GPU_INTRO if gpu_only else INTRO]
    if usable:
        lines += machine_section(usable)
    lines += summary(ordered)
    for r in ordered:
        lines += section(r)
    text = "\n".join(lines).rstrip() + "\n"
    return text + ("\n" + extra.strip() + "\n" if extra.strip() else "")


def load(folder: Path) -> list[dict[str, Any]]:
    """Every ``<name>.json`` result in ``folder``."""
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def write(folder: Path, doc: Path, extra: str = "") -> Path:
    """Regenerate ``doc`` from every result in ``folder``."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render(load(folder), extra))
    return doc
