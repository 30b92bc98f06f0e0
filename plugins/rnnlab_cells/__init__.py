"""Built-in recurrent cells: rnn, lstm, gru, indrnn, simple.

This module is what the ``rnnlab`` entry point loads. It stays cheap to import: the cell classes
(and torch) are imported only when the hook is called.
"""

from __future__ import annotations

import rnnlab
from rnnlab.hookspecs import Register


@rnnlab.hookimpl
def register_cells(register: Register) -> None:
    from rnnlab_cells.indrnn import IndRNNCell
    from rnnlab_cells.simple import SimpleRNN
    from rnnlab_cells.twins import ElmanCell, GRUCell, LSTMCell

    register("rnn", ElmanCell)
    register("lstm", LSTMCell)
    register("gru", GRUCell)
    register("indrnn", IndRNNCell)
    register("simple", SimpleRNN)
