"""ReLU with identity initialisation of the recurrent weight (IRNN, Le et al. 2015)."""

from __future__ import annotations

from typing import ClassVar, cast

import torch
from pydantic import Field

import rnnlab


class IdentityReLU(rnnlab.Remedy):
    """Switch the cell to ReLU, set W_hh = scale * I with zero biases (Le et al. 2015) and draw the
    input weights from N(0, input_std^2). Needs a cell with a plain recurrent matrix (capability
    ``identity_init``: rnn, simple); gated cells are incompatible.

    ``input_std`` defaults to 0.001, the IRNN of Li et al. 2018's adding-problem code
    (``W_in_to_hid=lasagne.init.Normal(0.001)``, a standard deviation; github.com/Sunnydreamrain/
    IndRNN_Theano_Lasagne, ``adding/adding.py``): torch's default input weights (std ~0.07 at
    hidden 64) make the identity recurrence sum large inputs over T steps (measured at T=200: MSE
    13.5 and gradient norm 1.1e4 at initialisation, against 1.1 and 211 with std 0.001).
    """

    class Params(rnnlab.Params):
        scale: float = Field(1.0, gt=0, description="W_hh = scale * I (IRNN uses 1.0; np-RNN < 1)")
        input_std: float | None = Field(
            0.001,
            gt=0,
            description="std of the input weights' normal init (Li et al.'s IRNN code: 0.001); "
            "null keeps the cell's own",
        )

    params: Params

    requires: ClassVar[frozenset[str]] = frozenset({"identity_init"})
    stage: ClassVar[int] = 0

    def apply_cell(self, cell: rnnlab.Cell, layer: int) -> rnnlab.Cell:
        # requires identity_init: the cell has init_identity (checked when it was registered)
        cast(rnnlab.IdentityInit, cell).init_identity(float(self.params.scale), "relu")
        std = self.params.input_std
        if std is not None:
            weight = cell.input_weight()
            if weight is None:
                raise ValueError(
                    f"relu: input_std needs the cell's input_weight(), and "
                    f"{type(cell).__name__} returns None; set input_std: null to keep its own"
                )
            with torch.no_grad():
                weight.normal_(0.0, float(std))
        return cell
