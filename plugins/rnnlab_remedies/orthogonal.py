"""Orthogonal initialisation of the recurrent weight (Saxe et al. 2014; Henaff et al. 2016)."""

from __future__ import annotations

from functools import partial
from typing import ClassVar, cast

from pydantic import Field
from torch import nn

import rnnlab


class OrthogonalInit(rnnlab.Remedy):
    """W_hh = gain * Q with Q a random orthogonal matrix, so that W_hh W_hh^T = gain^2 I.

    Saxe, McClelland & Ganguli 2014 ("Exact solutions to the nonlinear dynamics of learning in
    deep linear neural networks", ICLR) show that random orthogonal initial weights keep every
    singular value of a product of layers at 1, so gradients neither vanish nor explode through
    depth at the start of training; an RNN unrolled in time is such a product with one shared
    matrix. Henaff, Szlam & LeCun 2016 ("Recurrent orthogonal networks and long-memory tasks",
    ICML) find that an orthogonally initialised RNN solves the copy task at lengths where the
    default initialisation does not. Q is drawn as both papers do it, the Q of a QR
    decomposition of a standard normal matrix with the signs of R's diagonal folded in (so Q is
    uniform on the orthogonal group, Mezzadri 2007): ``torch.nn.init.orthogonal_`` with
    ``gain``, from torch's global random stream, which the run seeds (same seed, same W).

    The cell must declare capability ``recurrent_init``: its ``init_recurrent`` writes the
    trained parameter that multiplies h_{t-1} (rnn, lstm, gru, simple, cornn, lem). Gated cells
    get one independent orthogonal block per gate (LSTM's i, f, g, o; GRU's r, z, n; LEM's
    three), since it is each gate's matrix that multiplies h_{t-1}; the papers treat ungated
    networks, so that is an extension, not theirs. Biases and input weights keep the cell's
    own initialisation. Cells whose recurrence is built from other parameters (indrnn's
    diagonal, antisymmetric, lipschitz, exprnn, which is orthogonal by construction, lru) do
    not declare it and are incompatible.

    Conflicts with ``relu``, which sets the same matrix to scale * I (the later of the two
    would undo the other).
    """

    class Params(rnnlab.Params):
        gain: float = Field(
            1.0, gt=0, description="W_hh = gain * Q, Q orthogonal (1.0: Saxe et al.'s choice)"
        )

    params: Params

    requires: ClassVar[frozenset[str]] = frozenset({"recurrent_init"})
    conflicts: ClassVar[frozenset[str]] = frozenset({"relu"})
    stage: ClassVar[int] = 0

    def apply_cell(self, cell: rnnlab.Cell, layer: int) -> rnnlab.Cell:
        # requires recurrent_init: the cell has init_recurrent (checked when it was registered)
        init = partial(nn.init.orthogonal_, gain=float(self.params.gain))
        cast(rnnlab.RecurrentInit, cell).init_recurrent(init)
        return cell
