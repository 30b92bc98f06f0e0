"""Built-in recurrent cells: rnn, lstm, gru, indrnn, simple.

This module is what the ``rnnlab`` entry point loads. It stays cheap to import: the cells are
registered as ``"module:Class"`` references, which rnnlab imports (with torch) on first use.
"""

from __future__ import annotations

import rnnlab
from rnnlab.hookspecs import Register


@rnnlab.hookimpl
def register_cells(register: Register) -> None:
    register("rnn", "rnnlab_cells.twins:ElmanCell")
    register("lstm", "rnnlab_cells.twins:LSTMCell")
    register("gru", "rnnlab_cells.twins:GRUCell")
    register("indrnn", "rnnlab_cells.indrnn:IndRNNCell")
    register("simple", "rnnlab_cells.simple:SimpleRNN")
