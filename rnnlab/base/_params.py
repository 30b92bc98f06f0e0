"""The base of every plugin class's nested ``Params`` model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Params(BaseModel):
    """Base for a plugin's nested ``Params`` model: unknown keys are rejected, values are frozen.

    Declare the class's options in it and annotate the instance attribute with it, so that
    ``self.params.max_norm`` is typed (rnnlab validates the options before it builds the class).

    Example:
        >>> class MyRemedy(rnnlab.Remedy):
        ...     class Params(rnnlab.Params):
        ...         max_norm: float = 1.0
        ...
        ...     params: Params
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
