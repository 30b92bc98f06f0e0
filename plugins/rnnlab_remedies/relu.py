"""ReLU with identity initialisation of the recurrent weight (IRNN, Le et al. 2015)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

import rnnlab
from rnnlab.base import Cell


class IdentityReLU(rnnlab.Remedy):
    """Switch the cell to ReLU and set W_hh = scale * I with zero biases. Needs a cell with a plain
    recurrent matrix (capability ``identity_init``: rnn, simple); gated cells are incompatible."""

    class Params(rnnlab.Params):
        scale: float = Field(1.0, gt=0, description="W_hh = scale * I (IRNN uses 1.0; np-RNN < 1)")

    requires: ClassVar[frozenset[str]] = frozenset({"identity_init"})
    stage: ClassVar[int] = 0

    def apply_cell(self, cell: Cell, layer: int) -> Cell:
        cell.init_identity(float(self.params.scale), "relu")  # type: ignore[attr-defined]
        return cell
