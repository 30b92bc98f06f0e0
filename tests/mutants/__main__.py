"""Run every planted defect against its test selection: ``python -m tests.mutants [NAME ...]``.

Each defect (a module ``tests/mutants/m*.py``) runs in a pytest process of its own with the
module loaded as a plugin (``-p``), on the module's ``SELECTION``; at least one test must fail
(``EXPECT = "pass"`` modules, which simulate a machine rather than plant a defect, must pass
instead). Prints a table defect -> the tests that caught it, and exits 1 when a defect survived
or a selection could not run (a collection error, or a defect that no longer applies).

Options: ``--slow`` also runs each module's ``SLOW_SELECTION`` (slow tests, minutes); ``--list``
prints the defects and their selections; ``-j N`` runs N defects at a time.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import subprocess
import sys
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "tests.mutants"
SITE = """\
import importlib, os

for name in filter(None, os.environ.get("RNNLAB_MUTANT", "").split(",")):
    importlib.import_module(name).apply()
"""


@dataclass
class Outcome:
    name: str
    what: str
    verdict: str  # caught | SURVIVED | ERROR | passed (as required) | awaited
    caught_by: list[str] = field(default_factory=list)
    seconds: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict in ("caught", "passed (as required)", "awaited") or (
            self.verdict.startswith("skipped")
        )


def defects() -> list[ModuleType]:
    found = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]))
    return [importlib.import_module(f"{PACKAGE}.{n}") for n in found if n.startswith("m")]


def failed_tests(report: Path) -> list[str]:
    """Test ids with a failure or an error in a junit XML report."""
    if not report.exists():
        return []
    failed = []
    for case in ET.parse(report).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname', '')}::{case.get('name')}")
    return failed


def run_one(module: ModuleType, slow: bool, site: Path) -> Outcome:
    name = module.__name__.rsplit(".", 1)[1]
    what = (module.__doc__ or "").strip().splitlines()[0].split(" Caught by:")[0]
    selections = [list(module.SELECTION)] if module.SELECTION else []
    if slow and getattr(module, "SLOW_SELECTION", None):
        selections.append(list(module.SLOW_SELECTION))
    if not selections:
        return Outcome(name, what, "skipped (slow: --slow runs it)")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if getattr(module, "SUBPROCESSES", False):  # spawned rnnlab processes plant it too
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), env.get("PYTHONPATH", "")])
        env["RNNLAB_MUTANT"] = module.__name__
    started = time.perf_counter()
    caught: list[str] = []
    codes: list[int] = []
    tail = ""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{name}-") as scratch:
        for index, selection in enumerate(selections):
            report = Path(scratch) / f"{index}.xml"
            args = ["-p", module.__name__, "-p", "no:cacheprovider", "-q", "-o", "addopts="]
            if "-m" not in selection:
                args += ["-m", "not slow"]
            command = [sys.executable, "-m", "pytest", *args, f"--junitxml={report}", *selection]
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            codes.append(done.returncode)
            caught += failed_tests(report)
            tail = (done.stdout + done.stderr)[-3000:]
    seconds = time.perf_counter() - started
    if getattr(module, "EXPECT", "fail") == "pass":
        verdict = "passed (as required)" if set(codes) == {0} else "ERROR"
        return Outcome(name, what, verdict, caught, seconds, "" if verdict != "ERROR" else tail)
    if any(code not in (0, 1) for code in codes):  # 2-5: interrupted, usage, nothing collected
        return Outcome(name, what, "ERROR", caught, seconds, tail)
    if caught:
        awaits = getattr(module, "AWAITS", None)
        detail = f"it is caught now: delete AWAITS ({awaits})" if awaits else ""
        return Outcome(name, what, "ERROR" if awaits else "caught", caught, seconds, detail)
    if getattr(module, "AWAITS", None):
        return Outcome(name, what, "awaited", [], seconds, f"awaits {module.AWAITS}")
    return Outcome(name, what, "SURVIVED", [], seconds, tail)


def short(test: str) -> str:
    return test.removeprefix("tests.")


def table(outcomes: list[Outcome]) -> str:
    lines = ["| defect | result | caught by | s |", "|---|---|---|---|"]
    for o in outcomes:
        shown = ", ".join(short(t) for t in o.caught_by[:4])
        if len(o.caught_by) > 4:
            shown += f" (+{len(o.caught_by) - 4} more)"
        lines.append(f"| {o.name}: {o.what} | {o.verdict} | {shown or '-'} | {o.seconds:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutants", description=__doc__)
    parser.add_argument("names", nargs="*", help="defects to run (module names or prefixes)")
    parser.add_argument("--slow", action="store_true", help="also run the slow selections")
    parser.add_argument("--list", action="store_true", help="list the defects and exit")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="defects run at a time")
    options = parser.parse_args(argv)
    modules = [
        m
        for m in defects()
        if not options.names
        or any(m.__name__.rsplit(".", 1)[1].startswith(n) for n in options.names)
    ]
    if not modules:
        parser.error(f"no defect matches {options.names}")
    if options.list:
        for m in modules:
            print(f"{m.__name__}: {(m.__doc__ or '').strip().splitlines()[0]}")
            print(textwrap.indent(" ".join(m.SELECTION or ["(slow only)"]), "    "))
        return 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mutant-site-") as site:
        (Path(site) / "sitecustomize.py").write_text(SITE)
        with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
            outcomes = list(pool.map(lambda m: run_one(m, options.slow, Path(site)), modules))
    print(table(outcomes))
    for o in outcomes:
        if not o.ok or o.detail:
            print(f"\n--- {o.name}: {o.verdict}\n{o.detail}")
    bad = [o.name for o in outcomes if not o.ok]
    elapsed = time.perf_counter() - started
    print(f"\n{len(outcomes)} defects, {len(bad)} not caught or not run, {elapsed:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
