"""Shared machinery: interleaved median timing, results rows, child processes, the machine.

Every benchmark compares rnnlab against a baseline measured in the same run. Repetitions are
interleaved (A, B, A, B, ...) so that a burst of load from another process hits both sides, and
summarised by medians, which a few disturbed repetitions do not move. Each case runs in a fresh
process (``run_child``), so no case inherits another's allocator or thread state.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (child processes run there, so ``-m benchmarks.x`` resolves)."""


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    return float(statistics.median(values))


def interleave(cases: Mapping[str, Callable[[], Any]], reps: int) -> dict[str, list[Any]]:
    """Call every case once per repetition, in turn (A, B, A, B, ...), ``reps`` times.

    The order alternates between repetitions (A, B then B, A) so that neither side always runs
    first, warm or cold.

    Args:
        cases: name -> a callable; whatever it returns (a time, a list of times, a dict) is kept.
        reps: repetitions of each case.

    Returns:
        name -> the values its calls returned, in call order.
    """
    names = list(cases)
    out: dict[str, list[Any]] = {name: [] for name in names}
    for rep in range(reps):
        for name in names if rep % 2 == 0 else reversed(names):
            out[name].append(cases[name]())
    return out


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of the per-repetition ratios (each pair was measured side by side)."""
    return median([a / b for a, b in zip(numerators, denominators, strict=True)])


@dataclass
class Row:
    """One line of a benchmark's table.

    Attributes:
        case: what was measured (``lstm T=100``).
        value: the measured figure, in ``unit``.
        unit: ``ms``, ``s``, ``MB``, ``%``, ``trials/h`` ...
        baseline: the baseline's figure in the same unit, when there is one.
        baseline_label: what the baseline is (``torch loop``).
        ratio: ``value / baseline`` (median of paired ratios), when it is what the target is on.
        target: the target as text, ``<= 1.03x`` or ``< 0.3 s``.
        ok: whether the target was met (None: no target, e.g. a figure only reported).
        extra: any further numbers, kept in the JSON.
    """

    case: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def check(measured: float, op: str, limit: float) -> bool:
    """``measured op limit`` for op in ``<=``, ``<``, ``>=``, ``>``."""
    return {
        "<=": measured <= limit,
        "<": measured < limit,
        ">=": measured >= limit,
        ">": measured > limit,
    }[op]


def ratio_row(
    case: str,
    values: Sequence[float],
    baselines: Sequence[float],
    *,
    unit: str,
    baseline_label: str,
    op: str,
    limit: float,
    scale: float = 1.0,
    extra: dict[str, Any] | None = None,
) -> Row:
    """A row comparing paired repetitions: medians of each side, median of the paired ratios.

    Args:
        values, baselines: one figure per repetition, paired by index (in seconds, say).
        scale: multiplies the medians for display (1000: seconds shown as ms).
        op, limit: the target on the ratio, e.g. ``"<=", 1.03``.
    """
    ratio = paired_ratio(values, baselines)
    return Row(
        case=case,
        value=median(values) * scale,
        unit=unit,
        baseline=median(baselines) * scale,
        baseline_label=baseline_label,
        ratio=ratio,
        target=f"{op} {limit:g}x",
        ok=check(ratio, op, limit),
        extra={"reps": len(values), **(extra or {})},
    )


def control_note(rows: Sequence[Row], device: str = "cpu") -> str:
    """A sentence on the A/A controls of ``rows`` (``extra["control_ratio"]``), all measured on
    ``device``: the noise floor."""
    controls = [row.extra["control_ratio"] for row in rows if "control_ratio" in row.extra]
    if not controls:
        return ""
    low, high = min(controls), max(controls)
    where = "" if device == "cpu" else f"On {device.upper()}: "
    return (
        f"{where}A/A control (the torch side against an identical copy of itself, measured the "
        f"same way in the same runs): {low:.3f}x to {high:.3f}x across the cases; differences of "
        "that size are this machine's noise, not rnnlab's."
    )


class CpuShare:
    """How much of the machine's CPU other processes used while a benchmark ran.

    Compares the busy time of all CPUs (``/proc/stat``) with this process's own CPU time and its
    waited-for children's (``getrusage``). Linux only; elsewhere the share is None.
    """

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except OSError:
            return None
        ticks = [int(v) for v in fields]
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(ticks[:8]) - ticks[3] - ticks[4]) / hz  # all but idle and iowait
        own = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            own += usage.ru_utime + usage.ru_stime
        return time.monotonic(), busy, own

    def others(self) -> float | None:
        """Fraction of the machine's CPU capacity (all cores) used by other processes so far."""
        end = self._sample()
        if self._start is None or end is None:
            return None
        wall = end[0] - self._start[0]
        busy = end[1] - self._start[1]
        own = end[2] - self._start[2]
        capacity = wall * (os.cpu_count() or 1)
        return max(0.0, min(1.0, (busy - own) / capacity)) if capacity > 0 else None


def versions() -> dict[str, str]:
    """Installed versions of what the figures depend on (read from metadata: nothing imported)."""
    found = {"python": platform.python_version()}
    stand_ins = {"mlflow": "mlflow-skinny"}  # what benchmarks/gpu.sh carries to the GPU machine
    for name in ("rnnlab", "torch", "mlflow", "optuna", "numpy"):
        found[name] = "not installed"
        for dist in (name, stand_ins.get(name, name)):
            try:
                found[name] = metadata.version(dist) + ("" if dist == name else f" ({dist})")
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    """Total memory in GiB (``/proc/meminfo``)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def gpu() -> str | None:
    """The first CUDA GPU's name when torch sees one (imports torch), else None."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def devices(only: str | None = None) -> list[str]:
    """Where the benchmarks with GPU cases measure: the CPU, and CUDA when torch sees a GPU.

    Args:
        only: ``"cpu"`` or ``"cuda"``: that device alone (``python -m benchmarks.run --device``).

    Raises:
        RuntimeError: ``only`` is ``"cuda"`` and torch sees no GPU.
    """
    import torch

    found = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if only is None:
        return found
    if only not in found:
        raise RuntimeError(
            f"--device {only}: expected a CUDA GPU, but torch {torch.__version__} sees none "
            "(torch.cuda.is_available() is False)"
        )
    return [only]


def synchronizer(device: str) -> Callable[[], None]:
    """What to call before reading the clock on ``device`` (a ``train.device`` value): CUDA kernels
    run asynchronously, so ``torch.cuda.synchronize`` waits for them; on the CPU there is nothing
    to wait for."""
    import torch

    from rnnlab.run import resolve_device

    return torch.cuda.synchronize if resolve_device(device).type == "cuda" else _nothing


def _nothing() -> None:
    pass


def suffix(device: str) -> str:
    """What a case's name gets on ``device``: nothing on the CPU (the published names), `` (cuda)``
    on a GPU."""
    return "" if device == "cpu" else f" ({device})"


def machine() -> dict[str, Any]:
    """The machine a result was measured on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": memory_gib(),
        "gpu": gpu(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions(),
        "date": now(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def child_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: this one's, with ``extra`` set."""
    env = dict(os.environ)
    env.update(extra)
    return env


def run_child(module: str, args: Mapping[str, Any], timeout: float = 900) -> dict[str, Any]:
    """Run ``python -m <module> --child '<json args>'`` in a fresh process and parse its result.

    The child prints one JSON object on its last line of stdout. A fresh process is how
    process-wide state (denormal flushing, peak RSS, imports) is measured cleanly.

    Raises:
        RuntimeError: the child failed; its stderr's tail is in the message.
    """
    done = subprocess.run(
        [sys.executable, "-m", module, "--child", json.dumps(dict(args))],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} child failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def prepare_process() -> None:
    """What every rnnlab training process does first (``rnnlab.run.prepare_process``): flush
    denormals before any parallel op; and one torch thread, so that the two sides of a comparison
    never fight over the cores of a shared machine."""
    import torch

    torch.set_flush_denormal(True)
    torch.set_num_threads(1)


def child_main(work: Callable[[dict[str, Any]], dict[str, Any]], prepare: bool = True) -> None:
    """The ``--child`` entry point of a benchmark module: parse the arguments, print the result.

    Args:
        work: measures one case from its arguments.
        prepare: call :func:`prepare_process` first (the denormals benchmark must not).
    """
    if len(sys.argv) != 3 or sys.argv[1] != "--child":
        raise SystemExit(f"usage: python -m {sys.argv[0]} --child '<json>'")
    if prepare:
        prepare_process()
    print(json.dumps(work(json.loads(sys.argv[2]))))


def result(
    name: str,
    title: str,
    method: str,
    rows: Sequence[Row],
    *,
    quick: bool,
    share: CpuShare,
    started: float,
    notes: Sequence[str] = (),
    details: Mapping[str, Any] | None = None,
    devices: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The JSON document of one benchmark run (``devices``: where it measured, when it has GPU
    cases)."""
    return {
        "name": name,
        "title": title,
        "method": method,
        "quick": quick,
        "measured_at": now(),
        "seconds": round(time.perf_counter() - started, 1),
        "other_processes_cpu_share": share.others(),
        "machine": machine(),
        "rows": [asdict(row) for row in rows],
        "notes": [note for note in notes if note],
        "details": dict(details or {}),
        **({"devices": list(devices)} if devices is not None else {}),
    }
