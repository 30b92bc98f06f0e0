"""Run configs: YAML -> validated pydantic models -> plugin classes with their Params.

Every error is a :class:`ConfigError` that names the file, the line, the key, the bad value and
the fix, and nothing runs before the whole config (plugin params included) has been validated.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rnnlab._names import NO_REMEDY
from rnnlab.base import CellShape, TaskShape
from rnnlab.errors import ConfigError, RnnlabError, SetupError
from rnnlab.run._compat import check_remedies
from rnnlab.run._sources import Key, Source, apply_override, dotted, load_yaml

if TYPE_CHECKING:
    from rnnlab.base import Cell, Dataset, Params, Remedy
    from rnnlab.plugins import Registry


SWEEP_SECTION = "sweep"  # the key that makes a run config a sweep file (docs/sweeps.md)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _PluginRef(BaseModel):
    """``name`` plus the plugin's own options, which its Params model validates."""

    model_config = ConfigDict(extra="allow")
    name: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DatasetConfig(_PluginRef):
    pass


class CellConfig(_PluginRef):
    hidden_size: int = Field(128, gt=0, description="units per recurrent layer")


class RemedyConfig(_PluginRef):
    pass


class ModelConfig(_Strict):
    layers: int = Field(1, ge=1, description="stacked recurrent layers")


class GroupLr(_Strict):
    """A learning-rate group's own rate (``train.lr_groups.NAME: {lr: X}``)."""

    lr: float = Field(gt=0, description="the group's learning rate itself")


class TrainConfig(_Strict):
    steps: int = Field(2000, gt=0, description="optimizer steps")
    batch_size: int = Field(64, gt=0)
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    lr: float = Field(1e-3, gt=0, description="learning rate")
    momentum: float = Field(0.0, ge=0, description="sgd / rmsprop momentum")
    rmsprop_alpha: float = Field(
        0.99,
        ge=0,
        lt=1,
        description="rmsprop's smoothing constant (torch's alpha; Arjovsky et al. 2016 and "
        "Cooijmans et al. 2016 used 0.9); ignored by adam and sgd",
    )
    weight_decay: float = Field(0.0, ge=0)
    lr_groups: dict[str, Annotated[float, Field(gt=0)] | GroupLr] = Field(
        default_factory=dict,
        description="learning rate per parameter group (rnnlab/run/_optim.py): NAME: factor "
        "(of lr) or NAME: {lr: X}; NAME is a group the cell declares (exprnn: orthogonal) or "
        "readout (the head)",
    )
    eval_every: int = Field(100, gt=0, description="validate every N steps (and at 0 and the end)")
    probe_every: int = Field(100, ge=0, description="gradient-flow probe every N steps; 0 = never")
    log_every: int = Field(
        10, gt=0, description="log train/loss and grad/global_norm every N steps"
    )
    dynamics_every: int | None = Field(
        None,
        ge=0,
        description="each layer's Lyapunov spectrum (dyn/*, dynamics.npz) every N steps, and at 0 "
        "and the end; default (null): at step 0 and the end only; 0 = never",
    )
    lyapunov_k: int | None = Field(
        None,
        gt=0,
        description="Lyapunov exponents measured per layer (default: min(state width, 32)); at "
        "most the state's width",
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    threads: int | None = Field(None, gt=0, description="torch CPU threads (default: torch's)")
    flush_denormal: bool = Field(True, description="flush denormal floats on CPU (much faster)")
    select: Literal["final", "best_val"] = Field(
        "final",
        description="the weights the test split is evaluated on at the end: final (after the "
        "last step) or best_val (from the evaluation with the lowest val/loss)",
    )
    plots: bool = Field(
        True,
        description="draw gradient_flow.png and gradient_flow_curves.png for the run (~0.2 s); "
        "false keeps gradient_flow.npz only (rnnlab report draws from it either way)",
    )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError("expected auto, cpu, cuda, cuda:N or mps")
        return value


class RunConfig(_Strict):
    """One training run, as written in YAML (docs/config.md lists every key)."""

    name: str | None = Field(None, description="MLflow experiment (default: the file's stem)")
    seed: int = 0
    dataset: DatasetConfig
    cell: CellConfig
    model: ModelConfig = ModelConfig()
    remedies: list[RemedyConfig] = Field(default_factory=list)
    train: TrainConfig = TrainConfig()

    @field_validator("remedies", mode="before")
    @classmethod
    def _remedy_names(cls, value: Any) -> Any:
        if isinstance(value, str | dict):  # remedies: clip -> [clip]
            value = [value]
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value


@dataclass(frozen=True)
class PluginChoice:
    """A resolved plugin: its registered name, class and validated Params instance."""

    name: str
    cls: type
    params: Params

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params.model_dump(mode="json")}


@dataclass(frozen=True)
class ResolvedRun:
    """A run config whose plugin names and options have all been checked."""

    config: RunConfig
    name: str
    dataset: PluginChoice
    cell: PluginChoice
    remedies: tuple[PluginChoice, ...]
    source: str

    def as_dict(self) -> dict[str, Any]:
        """The complete config, defaults filled in (what gets logged and saved)."""
        return {
            "name": self.name,
            "seed": self.config.seed,
            "dataset": self.dataset.as_dict(),
            "cell": {**self.cell.as_dict(), "hidden_size": self.config.cell.hidden_size},
            "model": self.config.model.model_dump(),
            "remedies": [r.as_dict() for r in self.remedies],
            "train": self.config.train.model_dump(),
        }

    def flat_params(self) -> dict[str, str]:
        """Flattened ``section.key -> value`` pairs for MLflow params."""
        flat: dict[str, str] = {}
        for key, value in self.as_dict().items():
            if key == "remedies":
                flat["remedies"] = ",".join(r.name for r in self.remedies) or NO_REMEDY
                for r in self.remedies:
                    for k, v in r.params.model_dump(mode="json").items():
                        flat[f"remedy.{r.name}.{k}"] = str(v)
            elif isinstance(value, dict):
                flat.update({f"{key}.{k}": str(v) for k, v in value.items()})
            else:
                flat[key] = str(value)
        return flat

    def instantiate_remedies(self) -> list[Remedy]:
        return [r.cls(r.params) for r in self.remedies]

    def instantiate_dataset(self) -> Dataset:
        dataset: Dataset = self.dataset.cls(self.dataset.params, self.config.seed)
        return dataset

    @property
    def cell_cls(self) -> type[Cell]:
        return self.cell.cls


def pydantic_errors(
    source: Source,
    exc: ValidationError,
    prefix: Key,
    allowed: Callable[[tuple[Any, ...]], list[str]],
) -> ConfigError:
    """One line per problem: where, what was wrong, and what to write instead."""
    lines = []
    for err in exc.errors():
        key: Key = (*prefix, *err["loc"])
        if err["type"] == "extra_forbidden":
            keys = allowed(err["loc"])
            msg = f"unknown key {str(key[-1])!r}; allowed keys here: {', '.join(keys)}"
            close = difflib.get_close_matches(str(key[-1]), keys, n=1, cutoff=0.5)
            if close:
                msg += f". Did you mean {close[0]!r}?"
        elif err["type"] == "missing":
            msg = f"required key {dotted(key)!r} is missing; add it"
        elif err["type"] == "value_error" and isinstance(err.get("input"), dict):
            # a check across options (a model_validator): the section, not its whole mapping
            msg = f"{err['msg'].removeprefix('Value error, ')}"
        else:  # pydantic's "Value error, " prefix says nothing to the user
            msg = f"{err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})"
        lines.append(f"{source.where(key)}: {msg}")
    return ConfigError("\n".join(lines))


def _fields_at(model: type, loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed beside the last element of ``loc`` inside ``model``."""
    current: Any = model
    for part in loc[:-1]:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            continue
        args = getattr(field.annotation, "__args__", ())
        current = args[0] if args and isinstance(args[0], type) else field.annotation
    return sorted(getattr(current, "model_fields", {}))


def parse_run_config(source: Source) -> RunConfig:
    if isinstance(source.data, dict) and SWEEP_SECTION in source.data:  # not "Did you mean 'seed'"
        path = source.path if source.path is not None else "FILE"
        raise source.error(
            (SWEEP_SECTION,),
            f"this is a sweep file (it has a `{SWEEP_SECTION}:` section): run it with "
            f"`rnnlab sweep {path}`, or remove the section to train its base config alone",
        )
    try:
        return RunConfig.model_validate(source.data)
    except ValidationError as exc:
        raise pydantic_errors(source, exc, (), lambda loc: _fields_at(RunConfig, loc)) from None


def _choose(
    source: Source, registry: Registry, kind: str, ref: _PluginRef, key: Key, fixed: set[str]
) -> PluginChoice:
    try:
        cls = registry.get(kind, ref.name)
    except ConfigError as exc:
        raise source.error((*key, "name"), str(exc)) from None
    params_model = cls.Params  # type: ignore[attr-defined]
    try:
        params = params_model.model_validate(ref.options())
    except ValidationError as exc:
        options = sorted({*params_model.model_fields, *fixed})
        raise pydantic_errors(source, exc, key, lambda loc: options) from None
    return PluginChoice(ref.name, cls, params)


def resolve(source: Source, registry: Registry) -> ResolvedRun:
    """Validate ``source`` fully: structure, plugin names, plugin options, compatibility."""
    config = parse_run_config(source)
    dataset = _choose(source, registry, "dataset", config.dataset, ("dataset",), {"name"})
    cell = _choose(source, registry, "cell", config.cell, ("cell",), {"name", "hidden_size"})
    task = TaskShape(lambda: _make_dataset(dataset, config.seed))  # built only if a plugin asks
    cell = _resolve_cell_params(source, cell, task)
    remedies: list[PluginChoice] = []
    names = [r.name for r in config.remedies]
    for i, ref in enumerate(config.remedies):
        if ref.name in names[:i]:
            raise source.error(("remedies", i), f"remedy {ref.name!r} is listed twice; keep one")
        remedies.append(_choose(source, registry, "remedy", ref, ("remedies", i), {"name"}))
    shape = CellShape(cell.name, cell.cls, cell.params, config.cell.hidden_size, task)
    check_remedies(source, registry, dataset.name, shape, remedies, config.model.layers, task)
    _check_device(source, config.train.device)
    _check_lr_groups(source, cell, config.train.lr_groups)
    name = config.name or (source.path.stem if source.path else "rnnlab")
    return ResolvedRun(config, name, dataset, cell, tuple(remedies), source.name)


def _check_device(source: Source, device: str) -> None:
    from rnnlab.run._devices import resolve_device  # torch: the registry has imported it already

    try:
        resolve_device(device)
    except ConfigError as exc:
        raise source.error(("train", "device"), str(exc).removeprefix("train.device: ")) from None


DEFAULT_GROUP = "default"
"""The learning-rate group of every parameter no other group takes; trains at ``train.lr``."""
READOUT_GROUP = "readout"
"""The model's linear head, a learning-rate group for any cell."""
MODEL_GROUPS = (READOUT_GROUP,)
"""The learning-rate groups the model itself offers, besides those a cell declares."""


def known_groups(cell_cls: type) -> list[str]:
    """The group names ``train.lr_groups`` may use with ``cell_cls``: the cell's declared
    ``lr_group_names`` and the model's (``readout``); rnnlab/run/_optim.py builds them."""
    return [*getattr(cell_cls, "lr_group_names", ()), *MODEL_GROUPS]


def _check_lr_groups(source: Source, cell: PluginChoice, wanted: dict[str, Any]) -> None:
    """Refuse a ``train.lr_groups`` key that is no group of this cell or of the model."""
    known = known_groups(cell.cls)
    for name in wanted:
        if name in known:
            continue
        message = (
            f"unknown learning-rate group {name!r} for cell {cell.name!r}; its groups are "
            f"{', '.join(repr(k) for k in known)} (a cell declares its own in lr_group_names; "
            f"{DEFAULT_GROUP!r}, everything else, is train.lr itself)"
        )
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        if close:
            message += f". Did you mean {close[0]!r}?"
        raise source.error(("train", "lr_groups", name), message)


def _make_dataset(dataset: PluginChoice, seed: int) -> Dataset:
    """The dataset of a config being resolved, for the sizes a plugin asked for."""
    try:
        made: Dataset = dataset.cls(dataset.params, seed)
    except RnnlabError:  # missing data files and the like: already a clear message
        raise
    except Exception as exc:
        raise SetupError(
            f"dataset {dataset.name!r} ({dataset.cls.__module__}) failed to build while the "
            f"config was resolved: {type(exc).__name__}: {exc}"
        ) from exc
    return made


def _resolve_cell_params(source: Source, cell: PluginChoice, task: TaskShape) -> PluginChoice:
    """The cell's options that follow the task (``auto``), replaced by their values."""
    try:
        params = cell.cls.resolve_params(cell.params, task)  # type: ignore[attr-defined]
    except ValidationError as exc:
        options = sorted({*type(cell.params).model_fields, "name", "hidden_size"})
        raise pydantic_errors(source, exc, ("cell",), lambda loc: options) from None
    return PluginChoice(cell.name, cell.cls, params)


def load_run_config(
    path: str | Path, registry: Registry, overrides: list[str] | tuple[str, ...] = ()
) -> ResolvedRun:
    """Read, override (``dotted.key=value``) and fully validate a run config file.

    Example:
        >>> run = load_run_config("experiments/adding.yaml", registry, ["cell.name=rnn"])
    """
    source = load_yaml(path)
    for assignment in overrides:
        apply_override(source, assignment)
    return resolve(source, registry)
