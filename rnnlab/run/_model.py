"""The sequence model: input -> recurrent layers over cells -> task head; owns the time loop."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rnnlab.base import Cell, LayerTrace, Params, Remedy, State, TaskKind


class SequenceModel(nn.Module):
    """Stacked recurrent layers and a linear head.

    On an unprobed step a layer whose cell has a fused path (``nn.LSTM``, cuDNN on a GPU) runs it;
    on a probed step only a cell that also declares ``probes_fused`` does (a linear recurrence's
    scan, the probe added to its b_t: ``Cell.forward_fused_probed``); otherwise the hand-written
    loop below runs with the same parameters. With ``traces`` every layer runs the loop.

    Args:
        cells: one cell per layer, bottom first.
        output_size: width of the head's output.
        kind: the task kind; last-step tasks only apply the head to the last step.
        remedies: their ``after_layer`` runs on every layer's output sequence, in this order.
    """

    def __init__(
        self,
        cells: Sequence[Cell],
        output_size: int,
        kind: TaskKind,
        remedies: Sequence[Remedy] = (),
    ) -> None:
        super().__init__()
        self.cells = nn.ModuleList(cells)
        self.head = nn.Linear(cells[-1].hidden_size, output_size)
        self.kind = kind
        self.remedies = tuple(remedies)  # not modules: a remedy registers its own in apply_model

    def layers(self) -> list[Cell]:
        return list(self.cells)  # type: ignore[arg-type]

    def constrain(self) -> None:
        """Let every cell enforce its parameter constraints (after an optimizer step)."""
        for cell in self.layers():
            cell.constrain()

    def forward(
        self, x: Tensor, probe: bool = False, traces: list[LayerTrace] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """Run a batch ``x`` of shape ``[T, B, input_size]``.

        When a ``traces`` list is given, every layer runs the hand-written loop and appends its
        :class:`~rnnlab.base.LayerTrace` (inputs, states and h_t of every step) to it.

        Returns:
            The head's output (``[B, O]`` or ``[T, B, O]`` for every-step tasks) and, when
            ``probe`` is true, one zero tensor ``[T, B, hidden]`` per layer that was added to every
            h_t: after backward its ``.grad`` is dL/dh_t for every t (empty list otherwise).
        """
        steps, batch = x.shape[0], x.shape[1]
        probes: list[Tensor] = []
        h = x
        for index, cell in enumerate(self.layers()):
            state = cell.init_state(batch, x.device, x.dtype)
            trace = None
            if traces is not None:
                trace = LayerTrace(cell)
                traces.append(trace)
            z: Tensor | None = None
            if probe:
                z = torch.zeros(
                    steps,
                    batch,
                    cell.hidden_size,
                    device=x.device,
                    dtype=x.dtype,
                    requires_grad=True,
                )
                probes.append(z)
            if cell.has_fused and z is None and trace is None:
                out, _ = cell.forward_fused(h, state)
            elif cell.has_fused and z is not None and trace is None and cell.probes_fused:
                out, _ = cell.forward_fused_probed(h, state, z)  # a scan's reverse: the curve
            else:
                out = run_loop(cell, h, state, z, trace)
            for remedy in self.remedies:
                out = remedy.after_layer(index, h, out)
            h = out
        if self.kind is TaskKind.CLASSIFY_EVERY:
            return self.head(h), probes
        return self.head(h[-1]), probes


def run_loop(
    cell: Cell,
    x: Tensor,
    state: State,
    probe: Tensor | None,
    trace: LayerTrace | None = None,
) -> Tensor:
    """The hand-written time loop: hoisted input projection, ``unbind`` (never ``x[t]``, which
    makes backward quadratic in T), and the probe added to each h_t before it is used again.
    With a ``trace``, it also keeps what each step was fed and gave."""
    inputs = cell.project_inputs(x).unbind(0)
    zs = probe.unbind(0) if probe is not None else None
    hs: list[Tensor] = []
    if trace is not None:
        trace.inputs = list(inputs)
        trace.hidden = hs  # filled below
    for t, u_t in enumerate(inputs):
        if trace is not None:
            trace.states.append(state)
        h, state = cell.step(u_t, state, t)
        if zs is not None:
            h = h + zs[t]
            state = (h, *state[1:])
        hs.append(h)
    return torch.stack(hs)


def build_model(
    cell_cls: type[Cell],
    cell_params: Params,
    *,
    input_size: int,
    hidden_size: int,
    layers: int,
    output_size: int,
    kind: TaskKind,
    remedies: Sequence[Remedy] = (),
) -> SequenceModel:
    """Instantiate ``layers`` cells (each told its depth by ``init_layer``), let every remedy act
    on each (in stage order), then on the model; the model calls their ``after_layer``."""
    remedies = sorted(remedies, key=lambda r: r.stage)
    cells: list[Cell] = []
    for layer in range(layers):
        cell = cell_cls(input_size if layer == 0 else hidden_size, hidden_size, cell_params)
        cell.init_layer(layer, layers)
        for remedy in remedies:
            cell = remedy.apply_cell(cell, layer)
        cells.append(cell)
    model = SequenceModel(cells, output_size, kind, remedies)
    for remedy in remedies:
        remedy.apply_model(model)
    return model
