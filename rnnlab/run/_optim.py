"""The optimizer of a run, with per-parameter-group learning rates.

Every parameter of the model trains in exactly one group:

* a group a cell declares (``Cell.lr_groups()``: expRNN's ``orthogonal``, its skew-symmetric
  A at a tenth of the run's rate as Lezcano-Casado & Martinez-Rubio 2019 train it), the same
  name on every layer joined into one group;
* ``readout``: the model's linear head (any cell);
* ``default``: everything else, at ``train.lr``.

``train.lr_groups`` sets a group's rate: a number is a factor of ``train.lr`` (``orthogonal:
0.1``), a mapping ``{lr: X}`` is the rate itself (``orthogonal: {lr: 2.0e-5}``). A cell-declared
group not named there keeps the cell's own factor; ``readout`` not named there stays in
``default``. The names are checked when the config is resolved (``_check_lr_groups``), so a
misspelt group is a ConfigError naming the key and the groups the cell knows, before anything
runs (rnnlab.run._config). The groups carry their name (``param_groups[i]["name"]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from rnnlab.errors import SetupError
from rnnlab.run._config import DEFAULT_GROUP, MODEL_GROUPS, READOUT_GROUP, GroupLr, known_groups

if TYPE_CHECKING:
    from rnnlab.base import Cell
    from rnnlab.run._config import ResolvedRun
    from rnnlab.run._model import SequenceModel


def _innermost(cell: Cell) -> Cell:
    """The configured cell inside any remedies' wrappers (its class declares the names)."""
    while isinstance(getattr(cell, "inner", None), nn.Module):
        cell = cell.inner  # type: ignore[assignment]
    return cell


def _rate(base: float, factor: float, setting: float | GroupLr | None) -> float:
    if setting is None:
        return base * factor
    if isinstance(setting, int | float):
        return base * float(setting)
    return setting.lr


def param_groups(
    model: SequenceModel, lr: float, settings: Mapping[str, float | GroupLr]
) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: ``{"name", "params", "lr"}`` each, ``default`` first,
    every parameter of ``model`` in exactly one, empty groups left out.

    Raises:
        SetupError: a cell put one parameter in two groups, or declared a parameter that is
            not the model's.
    """
    taken: dict[int, str] = {}
    groups: dict[str, dict[str, Any]] = {}
    owned = {id(p) for p in model.parameters()}

    def claim(group: str, rate: float, params: list[nn.Parameter], who: str) -> None:
        entry = groups.setdefault(group, {"name": group, "params": [], "lr": rate})
        for p in params:
            if id(p) not in owned:
                raise SetupError(
                    f"{who} put a parameter in group {group!r} that is not the model's"
                )
            if id(p) in taken:
                if taken[id(p)] == group:
                    continue  # a parameter shared by layers, listed by each
                raise SetupError(
                    f"{who} put one parameter in two learning-rate groups ({taken[id(p)]!r} "
                    f"and {group!r}); a parameter trains in exactly one"
                )
            taken[id(p)] = group
            entry["params"].append(p)

    for layer, cell in enumerate(model.layers()):
        declared = cell.lr_groups()
        for group, (factor, params) in declared.items():
            who = f"{type(cell).__name__}.lr_groups() (layer {layer})"
            if group in (DEFAULT_GROUP, *MODEL_GROUPS):
                raise SetupError(f"{who} declares group {group!r}, a name the model keeps")
            if group not in known_groups(type(_innermost(cell))):
                raise SetupError(
                    f"{who} returns group {group!r}, which its class's lr_group_names does not "
                    "list (train.lr_groups is checked against that list): add it there"
                )
            claim(group, _rate(lr, factor, settings.get(group)), list(params), who)
    if READOUT_GROUP in settings:
        claim(
            READOUT_GROUP,
            _rate(lr, 1.0, settings[READOUT_GROUP]),
            list(model.head.parameters()),
            "the model",
        )
    rest = [p for p in model.parameters() if id(p) not in taken]
    ordered = [{"name": DEFAULT_GROUP, "params": rest, "lr": lr}, *groups.values()]
    return [g for g in ordered if g["params"]]


def make_optimizer(model: SequenceModel, run: ResolvedRun) -> torch.optim.Optimizer:
    """``train.optimizer`` over :func:`param_groups` (``train.lr`` and ``train.lr_groups``)."""
    t = run.config.train
    groups = param_groups(model, t.lr, t.lr_groups)
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if t.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            groups, lr=t.lr, alpha=t.rmsprop_alpha, momentum=t.momentum, weight_decay=t.weight_decay
        )
    return torch.optim.Adam(groups, lr=t.lr, weight_decay=t.weight_decay)
