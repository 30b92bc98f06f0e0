"""Sweep files: a run config plus a ``sweep:`` section -> a validated plan of trials.

Every grid point (and, for samplers, every categorical value) is resolved against the installed
plugins before anything starts, so a typo in the space fails with file, line and fix.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from rnnlab._names import COMPLETED, FLOW, FLOW_SUMMARIES, TARGET_FLOW, VAL, VAL_ACCURACY, VAL_LOSS
from rnnlab.errors import IncompatibleError
from rnnlab.run import Key, ResolvedRun, Source, apply_override, load_yaml, pydantic_errors, resolve

if TYPE_CHECKING:
    from rnnlab.plugins import Registry

OBJECTIVES = (
    VAL_LOSS,
    VAL_ACCURACY,
    f"{VAL}/bpc",  # the chars task's derived metric
    f"{VAL}/nrmse",  # the forecast task's
    *(prefix + name for prefix in (FLOW, TARGET_FLOW) for name in FLOW_SUMMARIES[:3]),
)
"""What a sweep may optimise: validation scores and the gradient-flow summaries (never the test
split, which only reports the chosen weights)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Objective(_Strict):
    metric: str = Field(VAL_LOSS, description=f"one of {', '.join(OBJECTIVES)}")
    direction: Literal["minimize", "maximize"] = "minimize"

    @model_validator(mode="after")
    def _known(self) -> Objective:
        if self.metric not in OBJECTIVES:
            raise ValueError(f"metric must be one of {', '.join(OBJECTIVES)}")
        return self


class Range(_Strict):
    """A continuous (or integer) range for samplers: ``{low: 1e-4, high: 1e-2, log: true}``."""

    low: float
    high: float
    log: bool = False
    integer: bool = Field(False, description="sample whole numbers")

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high:
            raise ValueError(
                f"a range needs low below high, got low {self.low:g} and high {self.high:g}; "
                + ("swap them" if self.low > self.high else "a single value is a list: [value]")
            )
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low {self.low:g}")
        return self


class SweepSection(_Strict):
    sampler: Literal["grid", "tpe", "random", "gp"] = "grid"
    trials: int | None = Field(None, gt=0, description="configurations to sample (not grid)")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    objective: Objective = Objective()
    pruner: Literal["none", "median", "hyperband"] = "none"
    workers: Annotated[int, Field(gt=0)] | Literal["auto"] = "auto"
    kill_retries: int = Field(
        2,
        ge=0,
        description="times a trial runs again when its worker process is killed by a signal "
        "mid-trial (a lost process, not the trial's fault); then it is recorded failed",
    )
    space: dict[str, list[Any] | Range] = Field(default_factory=dict)
    exclude: list[dict[str, Any]] = Field(
        default_factory=list,
        description="grid points not to run: each entry maps space keys to one of their values",
    )

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: Any) -> Any:
        # one message in words, not one per branch of the union (``constrained-int``, ...)
        if value == "auto" or (type(value) is int and value > 0):
            return value
        raise ValueError("expected auto or a number of parallel trials above 0")


def point_key(params: dict[str, Any]) -> str:
    """A deterministic name for a set of parameter values (the same on every machine)."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def encode(value: Any) -> Any:
    """Optuna's categorical choices must be scalars: lists and mappings become JSON text."""
    return (
        value if value is None or isinstance(value, str | int | float | bool) else json.dumps(value)
    )


def objective_value(outcome: str, value: float | None) -> float | None:
    """The objective a trial counts with: its value when it completed and the value is finite;
    None for every other trial (a diverged, pruned or failed one has no objective)."""
    if outcome != COMPLETED or value is None or not math.isfinite(value):
        return None
    return value


def label(value: Any) -> str:
    """A short readable form of a space value: ``clip+relu``, ``rnn[nonlinearity=relu]``."""
    if isinstance(value, list):
        return "+".join(label(v) for v in value) or "none"
    if isinstance(value, dict):
        extra = ",".join(f"{k}={v}" for k, v in value.items() if k != "name")
        name = str(value.get("name", ""))
        return f"{name}[{extra}]" if extra else name
    return str(value)


@dataclass(frozen=True)
class Point:
    """One configuration of the space (without its seed) and what it resolves to."""

    values: dict[str, Any]  # space key -> value
    key: str
    data: dict[str, Any]  # the run config with the values applied (before validation)
    run: ResolvedRun | None  # None when incompatible
    problem: str | None = None

    def labels(self) -> dict[str, str]:
        return {k: label(v) for k, v in self.values.items()}


@dataclass
class SweepPlan:
    """A validated sweep: the base run, its section and (for a grid) every point."""

    name: str
    source: Source
    section: SweepSection
    registry: Registry
    base: ResolvedRun  # the run config every trial starts from
    points: list[Point]  # every grid point; for samplers, the points resolved so far
    definition: str  # canonical YAML of everything that shapes the trials
    excluded: int = 0  # grid points removed by sweep.exclude

    def objective(self, outcome: str, metrics: dict[str, float]) -> float | None:
        """A finished run's objective (its final ``metrics``), or None: see
        :func:`objective_value`."""
        return objective_value(outcome, metrics.get(self.section.objective.metric))

    @property
    def grid(self) -> bool:
        return self.section.sampler == "grid"

    @property
    def total(self) -> int:
        """Trials (one per configuration and seed) the sweep runs in all."""
        configs = len(self.points) if self.grid else int(self.section.trials or 0)
        return configs * len(self.section.seeds)

    def resolve_point(self, values: dict[str, Any], line_of: dict[str, str] | None = None) -> Point:
        """Resolve ``values`` (space key -> value) on top of the base config."""
        data = copy.deepcopy(self.source.data)
        data.pop("sweep", None)
        point = Source(self.source.path, data, dict(self.source.lines), dict(self.source.overrides))
        for key, value in values.items():
            parts: Key = tuple(key.split("."))
            _assign(point.data, parts, value)
            where = (line_of or {}).get(key) or self.source.where(("sweep", "space", key))
            point.overrides[parts] = f"{where} (sweep.space {key} = {label(value)})"
        key = point_key(values)
        try:
            return Point(values, key, point.data, resolve(point, self.registry))
        except IncompatibleError as exc:  # its problem: the reason without file, line and hint
            return Point(values, key, point.data, None, exc.problem)


def _assign(data: dict[str, Any], parts: Key, value: Any) -> None:
    node: Any = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        node[last] = {**node[last], **value}  # a mapping value is merged into the base mapping
    else:
        node[last] = value


def _exists(tree: Any, parts: Key) -> bool:
    for part in parts:
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def load_sweep(
    path: str | Path, registry: Registry, overrides: list[str] | tuple[str, ...] = ()
) -> SweepPlan:
    """Read and fully validate a sweep file (``--set`` overrides apply to it as to a run)."""
    source = load_yaml(path)
    for assignment in overrides:
        apply_override(source, assignment)
    return plan_from_source(source, registry)


def plan_from_definition(definition: str, registry: Registry, name: str) -> SweepPlan:
    """The plan a study was created with (its ``rnnlab.definition``), for reports and the UI."""
    stored = yaml.safe_load(definition)
    data = {**stored["run"], "name": stored.get("name", name), "sweep": stored["sweep"]}
    return plan_from_source(Source(None, data), registry)


def plan_from_source(source: Source, registry: Registry) -> SweepPlan:
    """Validate a parsed sweep file: its section, the base run and every point."""
    raw = source.data.get("sweep")
    if not isinstance(raw, dict):
        raise source.error(("sweep",), "a sweep file needs a `sweep:` section (see docs/sweeps.md)")
    _check_space(source, raw.get("space"))
    try:
        section = SweepSection.model_validate(raw)
    except ValidationError as exc:
        fields = sorted(SweepSection.model_fields)
        nested = {"objective": sorted(Objective.model_fields), "space": sorted(Range.model_fields)}
        raise pydantic_errors(
            source,
            exc,
            ("sweep",),
            lambda loc: nested.get(str(loc[0]), fields) if len(loc) > 1 else fields,
        ) from None
    if section.sampler == "grid" and section.trials is not None:
        raise source.error(("sweep", "trials"), "a grid runs every point; remove `trials`")
    if section.sampler != "grid" and section.trials is None:
        raise source.error(("sweep", "trials"), f"sampler {section.sampler!r} needs `trials: N`")
    if section.sampler != "grid" and section.exclude:
        raise source.error(
            ("sweep", "exclude"), "exclude removes grid points; remove it, or use sampler: grid"
        )
    base_data = {k: v for k, v in source.data.items() if k != "sweep"}
    base = resolve(Source(source.path, base_data, source.lines, source.overrides), registry)
    resolved = base.as_dict()
    for key, values in section.space.items():
        where: Key = ("sweep", "space", key)
        if key in ("seed", "name"):
            raise source.error(where, f"{key!r} cannot vary; use sweep.seeds for seeds")
        if not _exists(resolved, tuple(key.split("."))):
            raise source.error(
                where,
                f"{key!r} is not a key of the run config; keys are dotted paths "
                f"such as cell.name, dataset.seq_len, train.lr, remedies",
            )
        if isinstance(values, Range) and section.sampler == "grid":
            raise source.error(
                where, "a range cannot be a grid axis; list values, or use sampler: tpe"
            )
        if isinstance(values, list) and not values:
            raise source.error(where, "an empty list of values; give at least one")
    # what decides the trials; an empty exclude is left out, so the definitions of sweeps
    # started before it existed are unchanged and they resume; how many slots and how often a
    # killed attempt runs again decide how, not what, so they may change between resumes
    shaping = section.model_dump(
        mode="json",
        exclude={"workers", "kill_retries"} | (set() if section.exclude else {"exclude"}),
    )
    definition = yaml.safe_dump(
        {"name": base.name, "run": base_data, "sweep": shaping}, sort_keys=False
    )
    plan = SweepPlan(base.name, source, section, registry, base, [], definition)
    if plan.grid:
        _check_exclude(source, section)
        grid = _grid(section.space)
        kept = [v for v in grid if not any(_matches(v, rule) for rule in section.exclude)]
        plan.excluded = len(grid) - len(kept)
        if not kept:
            raise source.error(("sweep", "exclude"), "it excludes every point; nothing would run")
        plan.points = [plan.resolve_point(values) for values in kept]
    else:  # every listed value must resolve on its own
        for key, values in section.space.items():
            if isinstance(values, list):
                for value in values:
                    plan.resolve_point({key: value})
    return plan


def _check_space(source: Source, space: Any) -> None:
    """Each space value is a list of values or a range, checked first and told in words: as a
    union, pydantic's errors would name its internals (``list[any]``, ``function-after[...]``)."""
    if not isinstance(space, dict):
        return  # not a mapping: the section's own validation says so
    keys = sorted(Range.model_fields)
    for key, value in space.items():
        where: Key = ("sweep", "space", key)
        if isinstance(value, list):
            continue
        if not isinstance(value, dict):
            raise source.error(
                where,
                f"expected a list of values (e.g. [{value}]) or a range {{low: ..., high: ...}}, "
                f"got {value!r}",
            )
        try:
            Range.model_validate(value)
        except ValidationError as exc:
            raise pydantic_errors(source, exc, where, lambda loc: keys) from None


def _check_exclude(source: Source, section: SweepSection) -> None:
    """Every rule of ``exclude`` names space keys and one of each key's listed values, so a typo
    cannot leave the point it meant in the grid."""
    for i, rule in enumerate(section.exclude):
        if not rule:
            raise source.error(("sweep", "exclude", i), "an empty rule would exclude every point")
        for key, value in rule.items():
            where: Key = ("sweep", "exclude", i, key)
            values = section.space.get(key)
            if not isinstance(values, list):
                listed = ", ".join(k for k, v in section.space.items() if isinstance(v, list))
                raise source.error(where, f"{key!r} is not a key of sweep.space; keys: {listed}")
            if value not in values:
                shown = ", ".join(label(v) for v in values)
                raise source.error(
                    where,
                    f"{label(value)!r} is not one of the values of sweep.space.{key} ({shown}); "
                    "write it as the space lists it",
                )


def _matches(values: dict[str, Any], rule: dict[str, Any]) -> bool:
    return all(values.get(key) == value for key, value in rule.items())


def _grid(space: dict[str, list[Any] | Range]) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = [{}]
    for key, values in space.items():
        assert isinstance(values, list)
        points = [{**p, key: v} for p in points for v in values]
    return points


def describe_space(section: SweepSection) -> list[str]:
    lines = []
    for key, values in section.space.items():
        if isinstance(values, Range):
            scale = "log" if values.log else "linear"
            lines.append(f"{key}: {values.low} .. {values.high} ({scale})")
        else:
            lines.append(f"{key}: {', '.join(label(v) for v in values)}")
    return lines
