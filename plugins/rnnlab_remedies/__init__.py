"""Built-in remedies: clip, relu, batchnorm, layernorm, residual, gating.

This module is what the ``rnnlab`` entry point loads; the classes (and torch) load with the hook.
"""

from __future__ import annotations

import rnnlab
from rnnlab.hookspecs import Register


@rnnlab.hookimpl
def register_remedies(register: Register) -> None:
    from rnnlab_remedies.clip import GradientClipping
    from rnnlab_remedies.gating import Gating
    from rnnlab_remedies.norm import BatchNormRemedy, LayerNormRemedy
    from rnnlab_remedies.relu import IdentityReLU
    from rnnlab_remedies.residual import Residual

    register("clip", GradientClipping)
    register("relu", IdentityReLU)
    register("batchnorm", BatchNormRemedy)
    register("layernorm", LayerNormRemedy)
    register("residual", Residual)
    register("gating", Gating)
