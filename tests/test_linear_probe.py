"""The probe of a linear recurrence through its scan (``Cell.probes_fused``), against the loop.

The generic probe unrolls the step loop and adds a zero tensor to every h_t; a cell whose fused
path is a scan of h_t = a_t * h_{t-1} + b_t adds it to b_t instead, and backward through the scan
(the adjoint recurrence delta_t = dl/dh_t + a_{t+1} * delta_{t+1}) gives the same dL/dh_t.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from rnnlab.base import TaskKind
from rnnlab.plugins import make_plugin_manager
from rnnlab.run import build_model, grad_curve, target_gradients

STEPS = 200
CELLS = ["lru", "mingru", "minlstm"]


def _cell_cls(name: str) -> Any:
    registry = make_plugin_manager(load=["rnnlab_cells"], strict=True, trace=False).registry()
    return registry.get("cell", name)


def _curves(model: Any, x: torch.Tensor, y: torch.Tensor) -> tuple[list[np.ndarray], ...]:
    """Total curves (loss over every step) and target curves (the last 10 steps' loss), every
    layer, and the parameters' gradients."""
    out, probes = model(x, probe=True)
    loss = torch.nn.functional.cross_entropy(out.flatten(0, 1), y.flatten())
    target = torch.nn.functional.cross_entropy(out[-10:].flatten(0, 1), y[-10:].flatten())
    targets = target_gradients(target, probes)
    assert targets is not None
    model.zero_grad(set_to_none=True)
    loss.backward()
    total = [grad_curve(z.grad, STEPS) for z in probes]
    aimed = [grad_curve(g, STEPS) for g in targets]
    grads = [p.grad.detach().clone().double().numpy() for p in model.parameters()]
    return total, aimed, grads


def _model(name: str, layers: int, dtype: torch.dtype) -> Any:
    torch.manual_seed(0)
    model = build_model(
        _cell_cls(name),
        _cell_cls(name).Params(),
        input_size=3,
        hidden_size=8,
        layers=layers,
        output_size=4,
        kind=TaskKind.CLASSIFY_EVERY,
    )
    return model.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", CELLS)
def test_scan_probe_equals_the_loop_probe_at_T_200(
    name: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS, 6, 3, generator=g).to(dtype)
    y = torch.randint(0, 4, (STEPS, 6), generator=g)
    model = _model(name, 2, dtype)
    cls = type(model.layers()[0])
    assert cls.probes_fused.fget(model.layers()[0])  # type: ignore[attr-defined]

    def no_loop(*args: Any) -> Any:
        raise AssertionError("the probed step ran the step loop")

    with monkeypatch.context() as patch:  # the scan, and nothing else, serves the probe
        patch.setattr(cls, "step", no_loop)
        scan = _curves(model, x, y)
    with monkeypatch.context() as patch:  # the generic probe: the unrolled loop
        patch.setattr(cls, "probes_fused", property(lambda self: False))
        loop = _curves(model, x, y)
    for kind, mine, ref in zip(("total", "target"), scan, loop, strict=False):
        for layer, (a, b) in enumerate(zip(mine, ref, strict=True)):  # every point, relative
            # near and below float32's normal range (the target curve of a far step reaches
            # 1e-41) the scan's and the loop's different orders of operations pass through
            # subnormal intermediates, which keep fewer significant bits: minLSTM's points at
            # 5e-39..7e-38 differed by up to 9% (seen once, float32). Those points agree to
            # 1e3 x the smallest normal (1.2e-35 in float32), every point above to 1e-5 relative
            tiny = 1e3 * float(torch.finfo(dtype).tiny)
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=tiny, err_msg=f"{kind} layer {layer}")
    for index, (a, b) in enumerate(zip(scan[2], loop[2], strict=True)):  # the update is the same
        scale = 1e-5 * float(np.abs(b).max())  # entries near 0 differ by float rounding
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=scale, err_msg=f"parameter {index}")
    total = scan[0][0]
    assert total.shape == (STEPS,) and total.min() > 0  # a curve over every step, no underflow
    assert not np.allclose(total, total[-1])  # not flat: the gradient does vary along T


def test_a_cell_without_the_seam_is_probed_by_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model("lstm", 1, torch.float32)
    cell = model.layers()[0]
    assert cell.has_fused and not cell.probes_fused
    calls: list[int] = []
    step = type(cell).step

    def counted(self: Any, *args: Any) -> Any:
        calls.append(1)
        return step(self, *args)

    monkeypatch.setattr(type(cell), "step", counted)
    model(torch.randn(5, 2, 3), probe=True)
    assert len(calls) == 5
