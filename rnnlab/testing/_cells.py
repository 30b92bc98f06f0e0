"""The cell contract suite."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor

from rnnlab.base import Cell, State, TaskKind
from rnnlab.run import build_model, run_loop
from rnnlab.testing._available import UNDER_TEST, needed, registry_with
from rnnlab.testing._learning import LEARNABLE, Learnable, learning_run
from rnnlab.testing._support import (
    Contract,
    close,
    missing_gradients,
    options,
    probes_match_autograd,
    short_run,
    unknown_key_rejected,
)


class CellContract(Contract):
    """What every :class:`rnnlab.Cell` must do. Set ``cell_cls`` (and ``params`` if needed)."""

    cell_cls: ClassVar[type[Cell]]
    tolerance: ClassVar[float] = 1e-5

    def make_cell(self, dtype: torch.dtype = torch.float32, seed: int = 0) -> Cell:
        torch.manual_seed(seed)
        return self.cell_cls(self.input_size, self.hidden_size, self.params).to(dtype)

    def inputs(self, dtype: torch.dtype = torch.float32) -> Tensor:
        g = torch.Generator().manual_seed(1)
        return torch.randn(self.steps, self.batch, self.input_size, generator=g).to(dtype)

    def start(self, cell: Cell, dtype: torch.dtype = torch.float32) -> State:
        """A non-zero initial state (positive, so that a relu cell passes a gradient)."""
        g = torch.Generator().manual_seed(2)
        return tuple(
            0.5 + torch.rand(s.shape, generator=g).to(dtype)
            for s in cell.init_state(self.batch, None, dtype)
        )

    def stepwise(self, cell: Cell, x: Tensor, state: State) -> tuple[Tensor, State]:
        """``forward`` called step by step: every h_t, and the final state."""
        hs = []
        for x_t in x.unbind(0):
            h, state = cell(x_t, state)
            hs.append(h)
        return torch.stack(hs), state

    def test_params_reject_unknown_keys(self) -> None:
        unknown_key_rejected(self.cell_cls)

    def test_init_state_and_shapes(self) -> None:
        cell = self.make_cell()
        for dtype in (torch.float32, torch.float64):
            state = cell.init_state(self.batch, torch.device("cpu"), dtype)
            assert isinstance(state, tuple) and state[0].shape == (self.batch, self.hidden_size)
            assert all(s.dtype == dtype and s.device.type == "cpu" for s in state)
        h, state = cell(self.inputs()[0], cell.init_state(self.batch))
        assert h.shape == (self.batch, self.hidden_size)
        assert torch.equal(state[0], h), "state[0] must be the h_t that forward returns"
        weight = cell.recurrent_weight()
        assert weight is None or (weight.dim() == 2 and weight.shape[1] == self.hidden_size)

    def test_step_and_model_loop_match_forward(self) -> None:
        cell, x = self.make_cell(), self.inputs()
        ref = mine = self.start(cell)
        h, _ = cell.step(cell.project_inputs(x[0]), ref, 0)  # one input projected alone
        close(h, cell(x[0], ref)[0], self.tolerance, "step on one projected input")
        for t, (x_t, u_t) in enumerate(zip(x, cell.project_inputs(x), strict=True)):
            h_ref, ref = cell(x_t, ref)
            h, mine = cell.step(u_t, mine, t)
            close(h, h_ref, self.tolerance, f"step {t} of inputs projected at once")
        expected, _ = self.stepwise(cell, x, self.start(cell))  # the model's loop does the same
        close(run_loop(cell, x, self.start(cell), None), expected, self.tolerance, "run_loop")

    def test_fused_path_matches_loop(self) -> None:
        cell, x = self.make_cell(), self.inputs()
        if not cell.has_fused:
            pytest.skip(f"{self.cell_cls.__name__} has no fused path")
        loop, last = self.stepwise(cell, x, self.start(cell))
        fused, fused_last = cell.forward_fused(x, self.start(cell))
        close(fused, loop, self.tolerance, "fused outputs")
        for a, b in zip(fused_last, last, strict=True):
            close(a, b, self.tolerance, "fused final state")
        params = list(cell.parameters())  # the same parameters, so the same gradients
        grads = zip(
            torch.autograd.grad(fused.square().sum(), params),
            torch.autograd.grad(loop.square().sum(), params),
            strict=True,
        )
        for a, b in grads:
            close(a, b, self.tolerance, "fused gradients")

    def test_probed_fused_path_matches_loop(self) -> None:
        """A cell that declares ``probes_fused`` gives the loop's probe gradients (dL/dh_t of
        every step, which enter its scan as they enter the loop) and the loop's outputs."""
        cell, x = self.make_cell(), self.inputs()
        if not (cell.has_fused and cell.probes_fused):
            pytest.skip(f"{self.cell_cls.__name__} has no probed fused path")
        g = torch.Generator().manual_seed(4)
        weights = torch.randn(self.steps, self.batch, self.hidden_size, generator=g)
        found = []
        for path in ("fused", "loop"):
            z = torch.zeros(self.steps, self.batch, self.hidden_size, requires_grad=True)
            if path == "fused":
                out, _ = cell.forward_fused_probed(x, self.start(cell), z)
            else:
                out = run_loop(cell, x, self.start(cell), z)
            (grad,) = torch.autograd.grad((out.tanh() * weights).sum(), z)
            found.append((out, grad))
        (fused, fused_grad), (loop, loop_grad) = found
        close(fused, loop, self.tolerance, "probed fused outputs")
        close(fused_grad, loop_grad, self.tolerance, "probe gradients (dL/dh_t) of the fused path")

    def test_deterministic_under_manual_seed(self) -> None:
        a, b, x = self.make_cell(seed=3), self.make_cell(seed=3), self.inputs()
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
        assert torch.equal(run_loop(a, x, self.start(a), None), run_loop(b, x, self.start(b), None))

    def test_float64_and_gradient_reaches_initial_state(self) -> None:
        cell, x = self.make_cell(torch.float64), 0.1 * self.inputs(torch.float64)
        start = self.start(cell, torch.float64)
        h0 = start[0].clone().requires_grad_(True)
        out = run_loop(cell, x, (h0, *start[1:]), None)
        assert out.dtype == torch.float64 and torch.isfinite(out).all()
        if cell.has_fused:
            assert cell.forward_fused(x, start)[0].dtype == torch.float64
        (grad,) = torch.autograd.grad(out[-1].sum(), h0)  # d h_T / d h_0 through the loop
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, "no gradient from h_T to h_0"

    def test_step_reads_h_from_state0(self) -> None:
        """The model adds its probe to ``state[0]`` between steps, so a cell must read h_{t-1}
        from there: replacing ``state[0]`` alone must change every step's output."""
        cell, x = self.make_cell(), self.inputs()
        state = self.start(cell)
        g = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for t, u_t in enumerate(cell.project_inputs(x).unbind(0)):
                h, after = cell.step(u_t, state, t)
                moved = (state[0] + 0.5 + torch.rand(state[0].shape, generator=g), *state[1:])
                assert not torch.allclose(cell.step(u_t, moved, t)[0], h), (
                    f"step {t}: replacing state[0] alone left h_t unchanged; read h_(t-1) from "
                    "state[0], never from a copy elsewhere in the state or on the cell"
                )
                state = after

    def test_every_parameter_gets_a_gradient(self) -> None:
        cell, x = self.make_cell(), self.inputs()
        paths = {"step path": lambda: run_loop(cell, x, self.start(cell), None)}
        if cell.has_fused:
            paths["fused path"] = lambda: cell.forward_fused(x, self.start(cell))[0]
        for path, run in paths.items():
            cell.zero_grad(set_to_none=True)
            run().square().sum().backward()
            missing = missing_gradients(cell, self.unused_parameters)
            assert not missing, (
                f"{path}: no gradient reaches {missing} (detached? if the recurrence never uses "
                "them, list them in unused_parameters)"
            )

    def test_recurrent_weight_is_the_matrix_multiplying_h(self) -> None:
        """Moving the parameters in a direction that changes ``recurrent_weight()`` changes h_t
        when h_{t-1} != 0, and nothing when h_{t-1} = 0."""
        cell, x = self.make_cell(), self.inputs()[0]
        weight = cell.recurrent_weight()
        if weight is None:
            pytest.skip(f"{self.cell_cls.__name__} has no recurrent weight")
        assert weight.requires_grad, "recurrent_weight() must be computed from the parameters"
        params = list(cell.parameters())
        g = torch.Generator().manual_seed(5)
        pull = torch.randn(weight.shape, generator=g)
        found = torch.autograd.grad((weight * pull).sum(), params, allow_unused=True)
        moves = [(p, d) for p, d in zip(params, found, strict=True) if d is not None and d.any()]
        assert moves, "recurrent_weight() depends on no parameter"
        scale = 0.5 / max(float(d.abs().max()) for _, d in moves)
        live = self.start(cell)
        states = {"h_(t-1) = 0": (torch.zeros_like(live[0]), *live[1:]), "h_(t-1) != 0": live}
        with torch.no_grad():
            before = {k: cell.step(cell.project_inputs(x), s, 0)[0] for k, s in states.items()}
            for p, d in moves:
                p.add_(d, alpha=scale)
            after = {k: cell.step(cell.project_inputs(x), s, 0)[0] for k, s in states.items()}
            for p, d in moves:
                p.sub_(d, alpha=scale)
        close(after["h_(t-1) = 0"], before["h_(t-1) = 0"], self.tolerance, "h_t with h_(t-1) = 0")
        assert not torch.allclose(after["h_(t-1) != 0"], before["h_(t-1) != 0"]), (
            "changing recurrent_weight()'s parameters did not change h_t: it is not the matrix "
            "multiplying h_(t-1)"
        )

    def test_recurrent_init_writes_the_recurrent_weight(self) -> None:
        """With capability ``recurrent_init``, ``init_recurrent(init)`` hands ``init`` one H x H
        block per row block of ``recurrent_weight()`` and what it writes there is what
        ``recurrent_weight()`` then returns (the real parameter, not a copy)."""
        if "recurrent_init" not in self.cell_cls.capabilities:
            pytest.skip(f"{self.cell_cls.__name__} does not declare recurrent_init")
        cell, h = self.make_cell(), self.hidden_size
        g = torch.Generator().manual_seed(6)
        written: list[Tensor] = []

        def init(block: Tensor) -> None:
            assert block.shape == (h, h), f"init_recurrent handed a {tuple(block.shape)} block"
            block.copy_(torch.randn(block.shape, generator=g, dtype=torch.float64))
            written.append(block.detach().clone())

        seam: Any = cell  # init_recurrent exists: checked when the cell is registered
        seam.init_recurrent(init)
        weight = cell.recurrent_weight()
        assert weight is not None, "a cell with recurrent_init must have a recurrent_weight()"
        assert len(written) == weight.shape[0] // h, (
            f"init_recurrent called init {len(written)} times for a recurrent_weight() of "
            f"{weight.shape[0]} rows ({weight.shape[0] // h} blocks of {h})"
        )
        close(weight.detach(), torch.cat(written), self.tolerance, "recurrent_weight() after init")

    @pytest.mark.parametrize("layers", [1, 2])
    def test_probes_equal_autograd(self, layers: int) -> None:
        torch.manual_seed(0)
        model = build_model(
            self.cell_cls,
            self.params if self.params is not None else self.cell_cls.Params(),
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            layers=layers,
            output_size=3,
            kind=TaskKind.CLASSIFY_EVERY,
        ).double()
        probes_match_autograd(model, self.inputs(torch.float64), self.tolerance)

    def test_trains(self) -> None:
        cell = {"name": UNDER_TEST, "hidden_size": 8, **options(self.params, self.cell_cls)}
        registry = registry_with("cell", self.cell_cls)
        needed(registry, "dataset", self.dataset_name, "dataset_name")
        short_run(registry, {"name": self.dataset_name, **self.dataset_options}, cell)

    def test_learns(self) -> None:
        cell = {"name": UNDER_TEST, "hidden_size": 8, **options(self.params, self.cell_cls)}
        also = [("dataset", LEARNABLE, Learnable)]
        learning_run(registry_with("cell", self.cell_cls, also=also), cell)
