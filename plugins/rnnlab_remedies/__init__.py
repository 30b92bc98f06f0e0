"""Built-in remedies: clip, relu, orthogonal, batchnorm, layernorm, residual, gating, flossing.

This module is what the ``rnnlab`` entry point loads; the remedies are registered as
``"module:Class"`` references, which rnnlab imports (with torch) on first use.
"""

from __future__ import annotations

import rnnlab


@rnnlab.hookimpl
def register_remedies(register: rnnlab.Register) -> None:
    register("clip", "rnnlab_remedies.clip:GradientClipping")
    register("relu", "rnnlab_remedies.relu:IdentityReLU")
    register("orthogonal", "rnnlab_remedies.orthogonal:OrthogonalInit")
    register("batchnorm", "rnnlab_remedies.norm:BatchNormRemedy")
    register("layernorm", "rnnlab_remedies.norm:LayerNormRemedy")
    register("residual", "rnnlab_remedies.residual:Residual")
    register("gating", "rnnlab_remedies.gating:Gating")
    register("flossing", "rnnlab_remedies.flossing:GradientFlossing")
