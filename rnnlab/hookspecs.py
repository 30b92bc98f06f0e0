"""The hooks a plugin can implement. Declarations only; see docs/plugins.md for a tutorial."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("rnnlab")

Register = Callable[[str, type | str], None]
"""``register(name, cls_or_ref)``: a class, or a lazy ``"package.module:ClassName"`` reference
to it that rnnlab imports on first use (so listing plugins stays cheap)."""


@hookspec
def register_cells(register: Register) -> None:
    """Register recurrent cells.

    :param register: call ``register(name, cls)`` once per cell; ``cls`` is a subclass of
        :class:`rnnlab.Cell` with a nested ``Params`` model, or a ``"package.module:ClassName"``
        string naming one, imported only when the cell is first used.
    :return: nothing; return values are ignored.

    .. versionadded:: 0.1
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets (tasks).

    :param register: call ``register(name, cls)`` once per dataset; ``cls`` is a subclass of
        :class:`rnnlab.Dataset` with a nested ``Params`` model, or a ``"package.module:ClassName"``
        string naming one, imported only when the dataset is first used.
    :return: nothing; return values are ignored.

    .. versionadded:: 0.1
    """


@hookspec
def register_remedies(register: Register) -> None:
    """Register remedies for vanishing or exploding gradients.

    :param register: call ``register(name, cls)`` once per remedy; ``cls`` is a subclass of
        :class:`rnnlab.Remedy` with a nested ``Params`` model, or a ``"package.module:ClassName"``
        string naming one, imported only when the remedy is first used.
    :return: nothing; return values are ignored.

    .. versionadded:: 0.1
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``rnnlab`` command line.

    :param cli: the top-level :class:`click.Group`; call ``cli.command()`` or ``cli.add_command``.
    :return: nothing; return values are ignored.

    .. versionadded:: 0.1
    """
