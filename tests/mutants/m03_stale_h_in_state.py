"""rnn reads h_(t-1) from a copy in state[1] after step 0. Caught by: CellContract."""

from __future__ import annotations

from typing import Any

from tests.mutants import swap

SELECTION = ["tests/test_contracts.py", "-k", "TestRNNTanh"]


def apply() -> None:
    from rnnlab_cells.twins import ElmanCell

    def make_init(original: Any) -> Any:
        def init_state(self: Any, batch: int, device: Any = None, dtype: Any = None) -> Any:
            (h,) = original(self, batch, device, dtype)
            return (h, h)

        return init_state

    def make_step(original: Any) -> Any:
        def step(self: Any, u_t: Any, state: Any, t: int) -> Any:
            previous = state[1] if t > 0 and len(state) > 1 else state[0]
            h, _ = original(self, u_t, (previous,), t)
            return h, (h, h)  # the copy the next step reads

        return step

    def make_fused(original: Any) -> Any:
        def forward_fused(self: Any, x: Any, state: Any) -> Any:
            out, (last,) = original(self, x, state[:1])
            return out, (last, last)

        return forward_fused

    swap(ElmanCell, "init_state", make_init)
    swap(ElmanCell, "step", make_step)
    swap(ElmanCell, "forward_fused", make_fused)


def pytest_configure(config: Any) -> None:
    apply()
