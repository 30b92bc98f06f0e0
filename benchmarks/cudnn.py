"""The cuDNN check: on CUDA, the fused path (cuDNN) against the probed hand-written loop.

``python -m benchmarks.cudnn [--out DIR]``: for the rnn, lstm and gru cells (tanh and relu rnn),
a two-layer ``SequenceModel`` runs one batch unprobed (``forward_fused``: nn.RNN / nn.LSTM /
nn.GRU, which is cuDNN on a GPU) and probed (the loop the probes need, the same parameters);
their outputs and the gradients of one loss w.r.t. every parameter must agree. TF32 is off (with
it cuDNN and the loop's matmuls round differently at ~1e-3). Tolerances: float32 rtol = atol =
1e-5 (the CPU's tests use the same against torch's twins), float64 1e-10.

On a machine without CUDA it prints that it was skipped and exits 0 (so a CPU-only CI stays
green); benchmarks/gpu.sh runs it first on a GPU. Exit code 1 when a case disagrees. With
``--out DIR`` the cases go to ``DIR/cudnn.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

CELLS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("rnn", {}),
    ("rnn", {"nonlinearity": "relu"}),
    ("lstm", {}),
    ("gru", {}),
)
TOLERANCE = {"float32": 1e-5, "float64": 1e-10}
T, B, I, H, LAYERS = 50, 16, 8, 32, 2  # noqa: E741 - the usual names of the sizes


def case(name: str, options: dict[str, Any], dtype_name: str, device: Any) -> dict[str, Any]:
    """One cell and dtype: the largest differences between the two paths and whether they pass."""
    import torch

    from rnnlab.base import TaskKind
    from rnnlab.plugins import make_plugin_manager
    from rnnlab.run import build_model

    dtype = getattr(torch, dtype_name)
    cls: Any = (
        make_plugin_manager(load=None, strict=False, trace=False).registry().get("cell", name)
    )
    torch.manual_seed(0)
    model = build_model(
        cls,
        cls.Params.model_validate(options),
        input_size=I,
        hidden_size=H,
        layers=LAYERS,
        output_size=3,
        kind=TaskKind.CLASSIFY_EVERY,
    ).to(device=device, dtype=dtype)
    assert all(cell.has_fused for cell in model.layers()), f"{name} has no fused path"
    x = torch.randn(T, B, I, device=device, dtype=dtype)
    readout = torch.randn(T, B, 3, device=device, dtype=dtype)
    params = list(model.parameters())
    outputs, grads = [], []
    for probe in (False, True):  # the fused path (cuDNN), then the probed loop
        out, probes = model(x, probe=probe)
        assert bool(probes) is probe
        outputs.append(out)
        grads.append(torch.autograd.grad((out * readout).sum(), params))
    tol = TOLERANCE[dtype_name]
    worst = {"outputs": (outputs[0] - outputs[1]).abs().max().item()}
    worst["gradients"] = max((a - b).abs().max().item() for a, b in zip(*grads, strict=True))
    ok = torch.allclose(outputs[0], outputs[1], rtol=tol, atol=tol) and all(
        torch.allclose(a, b, rtol=tol, atol=tol) for a, b in zip(*grads, strict=True)
    )
    label = name + "".join(f" {k}={v}" for k, v in options.items())
    return {"cell": label, "dtype": dtype_name, "tolerance": tol, "max_abs_diff": worst, "ok": ok}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cudnn", description=__doc__)
    parser.add_argument("--out", type=Path, help="write DIR/cudnn.json")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("cuDNN check skipped: torch sees no CUDA GPU (nothing to compare on this machine)")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = torch.device("cuda")
    cases = [
        case(name, options, dtype, device)
        for name, options in CELLS
        for dtype in ("float32", "float64")
    ]
    for c in cases:
        diff = c["max_abs_diff"]
        verdict = "ok  " if c["ok"] else "FAIL"
        print(
            f"{verdict} {c['cell']:<20} {c['dtype']}: outputs {diff['outputs']:.1e}, "
            f"gradients {diff['gradients']:.1e} (tolerance {c['tolerance']:g})"
        )
    summary = {
        "device": torch.cuda.get_device_name(0),
        "cudnn": torch.backends.cudnn.version(),
        "torch": torch.__version__,
        "tf32": False,
        "sizes": {"T": T, "B": B, "input": I, "hidden": H, "layers": LAYERS},
        "cases": cases,
    }
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cudnn.json").write_text(json.dumps(summary, indent=2))
    failed = [f"{c['cell']} {c['dtype']}" for c in cases if not c["ok"]]
    if failed:
        print(f"cuDNN check FAILED for {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"cuDNN check passed: {len(cases)} cases, fused path = probed loop, TF32 off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
