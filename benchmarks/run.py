"""Run the benchmarks: ``python -m benchmarks.run [--quick] [--only NAME ...] [--out DIR]``.

Each benchmark's result goes to ``DIR/<name>.json`` (default ``benchmarks/results``) and the page
is regenerated from every result in DIR: ``docs/performance.md`` by default, ``DIR/performance.md``
when ``--out`` is given (so a trial run never overwrites the published figures), or ``--doc``.
A benchmark that fails is recorded as failed and the others still run (exit code 1).
``--device cuda`` runs only the GPU cases of the benchmarks that have some (benchmarks/gpu.sh);
it exits with code 3 when torch sees no GPU.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks._timing import ROOT, devices, prepare_process

NAMES = (*report.ORDER, "dynamics")  # dynamics (issue 19): last on the page until ORDER has it
PER_DEVICE = ("overhead", "fused", "probing", "scaling")  # the benchmarks with GPU cases
NO_GPU = 3  # the exit code of --device cuda where torch sees no GPU (benchmarks/gpu.sh's too)
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "performance.md"
NOTES = ROOT / "benchmarks" / "findings.md"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (about 1-2 minutes)")
    parser.add_argument("--only", nargs="+", choices=NAMES, metavar="NAME", help=", ".join(NAMES))
    parser.add_argument("--out", type=Path, help=f"results folder (default {RESULTS})")
    parser.add_argument("--doc", type=Path, help="the page to regenerate (see above)")
    parser.add_argument(
        "--report-only", action="store_true", help="only regenerate the page from DIR's results"
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        help="only the cases on this device (default: the CPU, and CUDA where torch sees a GPU); "
        f"for the benchmarks with GPU cases: {', '.join(PER_DEVICE)} (the default --only then)",
    )
    args = parser.parse_args(argv)
    others = sorted(set(args.only or ()) - set(PER_DEVICE))
    if args.device and others:
        parser.error(f"--device {args.device}: {', '.join(others)} has no cases per device")
    return args


def run_one(name: str, quick: bool, only: str | None = None) -> dict[str, Any]:
    """One benchmark's result (``only``: its cases on that device alone); a failure becomes a
    result that says so."""
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        options = {"only": only} if only else {}
        data: dict[str, Any] = module.run(quick=quick, **options)
    except Exception:
        return {"name": name, "quick": quick, "error": traceback.format_exc()}
    return data


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out = args.out or RESULTS
    doc = args.doc or (out / "performance.md" if args.out else DOC)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    if not args.report_only:
        if args.device == "cuda":
            try:
                devices("cuda")
            except RuntimeError as exc:
                print(f"{exc}; no benchmark ran", file=sys.stderr)
                return NO_GPU
        prepare_process()
    names = args.only or (PER_DEVICE if args.device else NAMES)
    for name in () if args.report_only else names:
        began = time.perf_counter()
        print(f"{name}: running{' (quick)' if args.quick else ''}...", flush=True)
        data = run_one(name, args.quick, args.device)
        (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
        if "error" in data:
            failed.append(name)
            print(f"{name}: FAILED\n{data['error']}", file=sys.stderr, flush=True)
            continue
        missed = [row["case"] for row in data["rows"] if row["ok"] is False]
        took = time.perf_counter() - began
        print(f"{name}: {took:.0f} s; missed: {', '.join(missed) or 'none'}", flush=True)
    notes = NOTES.read_text() if NOTES.exists() and doc == DOC else ""
    print(f"wrote {report.write(out, doc, notes)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
