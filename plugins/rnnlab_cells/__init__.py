"""Built-in recurrent cells: rnn, lstm, gru, indrnn, simple.

This module is what the ``rnnlab`` entry point loads. It stays cheap to import: the cells are
registered as ``"module:Class"`` references, which rnnlab imports (with torch) on first use.
"""

from __future__ import annotations

import rnnlab


@rnnlab.hookimpl
def register_cells(register: rnnlab.Register) -> None:
    register("rnn", "rnnlab_cells.twins:ElmanCell")
    register("lstm", "rnnlab_cells.twins:LSTMCell")
    register("gru", "rnnlab_cells.twins:GRUCell")
    register("indrnn", "rnnlab_cells.indrnn:IndRNNCell")
    register("simple", "rnnlab_cells.simple:SimpleRNN")
    register("exprnn", "rnnlab_cells.orthogonal:ExpRNNCell")
    register("cornn", "rnnlab_cells.oscillators:CoRNNCell")
    register("unicornn", "rnnlab_cells.oscillators:UnICORNNCell")
    register("lem", "rnnlab_cells.oscillators:LEMCell")
    register("antisymmetric", "rnnlab_cells.stable:AntisymmetricCell")
    register("lipschitz", "rnnlab_cells.stable:LipschitzCell")
    register("lru", "rnnlab_cells.linear:LRUCell")
    register("mingru", "rnnlab_cells.linear:MinGRUCell")
    register("minlstm", "rnnlab_cells.linear:MinLSTMCell")
