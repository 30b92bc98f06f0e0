"""The hooks a plugin can implement. Declarations only; see docs/plugins.md for a tutorial."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("rnnlab")

Register = Callable[[str, type], None]


@hookspec
def register_cells(register: Register) -> None:
    """Register recurrent cells.

    :param register: call ``register(name, cls)`` once per cell; ``cls`` subclasses
        :class:`rnnlab.Cell` and has a nested ``Params`` model.
    :return: nothing; return values are ignored.

    .. versionadded:: 0.1
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets (tasks).

    :param register: call ``register(name, cls)`` once per dataset; ``cls`` subclasses
        :class:`rnnlab.Dataset` and has a nested ``Params`` model.
    :return: nothing; return values are ignored.

    .. versionadded:: 0.1
    """


@hookspec
def register_remedies(register: Register) -> None:
    """Register remedies for vanishing or exploding gradients.

    :param register: call ``register(name, cls)`` once per remedy; ``cls`` subclasses
        :class:`rnnlab.Remedy` and has a nested ``Params`` model.
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
