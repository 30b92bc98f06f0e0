"""Remedy compatibility while a config is resolved: each remedy's ``check``, and a refusal whose
hint follows what the reason is about (the other remedies, the cell, or the options)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, cast

from pydantic import ValidationError

from rnnlab.base import CellShape, TaskShape, remedy_problem
from rnnlab.errors import ConfigError, IncompatibleError

if TYPE_CHECKING:
    from rnnlab.base import Cell, Params, Remedy
    from rnnlab.plugins import Registry
    from rnnlab.run._sources import Source


class PluginChoice(Protocol):
    """A resolved remedy as run._config's PluginChoice has it (a protocol: no import cycle)."""

    @property
    def name(self) -> str: ...
    @property
    def cls(self) -> type: ...
    @property
    def params(self) -> Params: ...


def check_remedies(
    source: Source,
    registry: Registry,
    dataset: str,
    cell: CellShape,
    remedies: Sequence[PluginChoice],
    layers: int,
    task: TaskShape,
) -> None:
    """Raise :class:`IncompatibleError` for the first remedy whose ``check`` gives a reason.

    Which hint the message gets is decided by asking ``check`` again: fine without the other
    remedies -> they clash (remove one); fine with the default options -> the options (the
    reason says what to change); else the cell, with the installed cells that support it.
    """
    names = [r.name for r in remedies]
    for i, remedy in enumerate(remedies):
        cls = cast("type[Remedy]", remedy.cls)
        others = [n for n in names if n != remedy.name]

        def problem(params: Params, beside: list[str], cls: type[Remedy] = cls) -> str | None:
            return remedy_problem(cls, params, cell, beside, layers, task)

        reason = problem(remedy.params, others)
        if not reason:
            continue
        where = source.where(("remedies", i))
        subject = f"remedy {remedy.name!r}"
        if problem(remedy.params, []) is None:  # the other remedies make it fail
            clash = " and ".join(repr(o) for o in others if problem(remedy.params, [o]))
            said = f"{subject} cannot be combined with {clash or 'the other remedies'}: {reason}"
            raise IncompatibleError(f"{where}: {said}; remove one of them from remedies", said)
        on_task = f"{subject} is incompatible with cell {cell.name!r} on dataset {dataset!r}"
        defaults = _defaults(cls)
        if defaults not in (None, remedy.params) and problem(defaults, []) is None:  # options
            raise IncompatibleError(f"{where}: {on_task}: {reason}", f"{on_task}: {reason}")
        fits = ", ".join(supporting_cells(registry, remedy, layers, task, cell.hidden_size))
        if cls.incompatibility(cell.name, cell.cls, [], layers) is None:  # check() says no
            hint = f". Cells that support it with these options: {fits}" if fits else ""
            raise IncompatibleError(f"{where}: {on_task}: {reason}{hint}", f"{on_task}: {reason}")
        said = f"{subject} is incompatible with cell {cell.name!r}"
        fix = f"; cells that support it: {fits}" if fits else ""
        raise IncompatibleError(
            f"{where}: {said}: {reason}. Remove it from remedies or change the cell{fix}",
            f"{said}: {reason}",
        )


def _defaults(cls: type[Remedy]) -> Params | None:
    try:
        return cls.Params()
    except ValidationError:  # an option without a default
        return None


def supporting_cells(
    registry: Registry, remedy: PluginChoice, layers: int, task: TaskShape, hidden_size: int
) -> list[str]:
    """The installed cells (with their default options) that ``remedy`` fits on this task."""
    fits = []
    for name in registry.names("cell"):
        try:
            cls = cast("type[Cell]", registry.get("cell", name))
            params = cls.resolve_params(cls.Params(), task)
        except (ConfigError, ValidationError):  # a broken reference; an option the task refuses
            continue
        shape = CellShape(name, cls, params, hidden_size, task)
        if (
            remedy_problem(cast("type[Remedy]", remedy.cls), remedy.params, shape, [], layers, task)
            is None
        ):
            fits.append(name)
    return fits
