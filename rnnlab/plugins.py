"""Plugin discovery and the registry of cells, datasets and remedies.

Built-in and third-party plugins take the same path: entry points in the ``rnnlab`` group, each
loaded on its own so that a broken one is reported by name and the rest keep working.

Environment:
    RNNLAB_LOAD_PLUGINS=a,b   load only these (entry-point or distribution names); empty = none.
    RNNLAB_TRACE_PLUGINS=1    print every plugin load, hook call and registration to stderr.
    RNNLAB_STRICT_PLUGINS=1   any plugin error is fatal (same as ``rnnlab --strict-plugins``).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, cast

import pluggy

from rnnlab import hookspecs
from rnnlab._names import BASES, HOOKS, PLURALS
from rnnlab.errors import ConfigError, PluginError

GROUP = "rnnlab"
KINDS = HOOKS  # kind -> the hook that registers it (rnnlab._names.HOOKS)
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


def _canonical(name: str | None) -> str:
    """A distribution name as PEP 503 compares it: ``My_Plugin`` and ``my-plugin`` are one."""
    return "" if name is None else re.sub(r"[-_.]+", "-", name).lower()


def env_flag(name: str) -> bool:
    """True when the environment variable is set to 1, true, yes or on."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin: an entry point, or an object registered directly."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    errors: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)

    def describe(self) -> str:
        dist = f"{self.distribution} {self.version}" if self.distribution else "not installed"
        return f"plugin '{self.name}' ({dist})"


@dataclass(eq=False)
class Registration:
    """One registered name: its class, or a lazy ``"module:Qualname"`` reference to the class
    that :attr:`cls` imports and checks on first use (listing names imports nothing)."""

    kind: str
    name: str
    target: type | str
    plugin: PluginInfo
    log: Callable[[str], None] = field(default=lambda message: None, repr=False)
    problem: str | None = None  # why the reference failed to load, once it has been tried
    _loaded: type | None = field(default=None, init=False, repr=False)

    @property
    def cls(self) -> type:
        """The class; a :class:`ConfigError` naming the plugin when its reference is broken."""
        if isinstance(self.target, type):
            return self.target
        if self._loaded is None and self.problem is None:
            self._load(self.target)
        if self._loaded is None:
            raise ConfigError(
                f"{self.kind} {self.name!r} of {self.plugin.describe()} cannot be loaded from "
                f"{self.target!r}: {self.problem}. The reference must name an "
                f"rnnlab.{BASES[self.kind]} subclass: fix it in the plugin, upgrade or "
                f"uninstall the plugin, or leave it out with RNNLAB_LOAD_PLUGINS"
            )
        return self._loaded

    def _load(self, ref: str) -> None:
        self.log(f"import {self.kind} {self.name!r} from {ref!r}")
        module, _, qualname = ref.partition(":")
        try:
            found: Any = importlib.import_module(module)
            for attribute in qualname.split("."):
                found = getattr(found, attribute)
        except Exception as exc:  # whatever the module raises is the plugin's problem
            self.problem = f"{type(exc).__name__}: {exc}"
        else:
            self.problem = _class_problem(self.kind, found)
        if self.problem is None:
            self._loaded = found
            return
        self.plugin.errors.append(
            f"registered {self.kind} {self.name!r} as {ref!r} badly: {self.problem}"
        )
        self.plugin.registered[self.kind].remove(self.name)  # unlisted, like a bad class
        self.log(f"  failed: {self.problem}")


def _reference_problem(ref: str) -> str | None:
    """Why ``ref`` is not a ``"package.module:ClassName"`` reference (None if it is one)."""
    module, colon, qualname = ref.partition(":")
    parts = [*module.split("."), *qualname.split(".")]
    if colon and all(part.isidentifier() for part in parts):
        return None
    return f"a lazy reference is 'package.module:ClassName', got {ref!r}"


def _class_problem(kind: str, cls: object) -> str | None:
    """Why ``cls`` cannot be registered as a ``kind`` (None if it can)."""
    from pydantic import BaseModel

    from rnnlab import base  # torch: only once a class is registered or a reference loaded

    expected: type = getattr(base, BASES[kind])
    if not isinstance(cls, type) or not issubclass(cls, expected):
        return f"expected a subclass of rnnlab.{expected.__name__}, got {cls!r}"
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        return f"{cls.__name__}.Params must be a pydantic model (subclass rnnlab.Params)"
    if params.model_config.get("extra") != "forbid":
        return f"{cls.__name__}.Params must reject unknown keys (subclass rnnlab.Params)"
    if kind == "cell":  # each capability it declares comes with its method (base.CAPABILITIES)
        return base.capability_problem(cast(type[base.Cell], cls))
    return None


class Plugins:
    """A plugin manager with its plugins loaded. Build it with :func:`make_plugin_manager`."""

    def __init__(self, pm: pluggy.PluginManager, strict: bool, trace: bool) -> None:
        self.pm = pm
        self.strict = strict
        self.trace = trace
        self.infos: dict[str, PluginInfo] = {}
        self.unmatched: list[str] = []  # names asked for (RNNLAB_LOAD_PLUGINS) that match nothing
        self.installed: dict[str, str | None] = {}  # every entry point -> its distribution
        self._registry: Registry | None = None

    # -- loading -------------------------------------------------------------------------------
    def add(self, name: str, plugin: object, info: PluginInfo | None = None) -> PluginInfo:
        """Register ``plugin`` (a module or object with hook implementations) under ``name``."""
        info = info or PluginInfo(name=name, module=getattr(plugin, "__name__", repr(plugin)))
        self.infos[name] = info
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except Exception as exc:  # pluggy's validation errors: wrong hook name or arguments
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            info.errors.append(f"invalid hook implementation: {exc}")
        self._log(f"loaded {info.describe()} from {info.module}")
        self._registry = None
        return info

    def load_entry_points(self, only: list[str] | None) -> None:
        """Load every entry point, or those ``only`` names (entry-point or distribution names;
        the names that match none are kept in :attr:`unmatched`)."""
        wanted = None if only is None else {*only, *(_canonical(n) for n in only)}
        matched: set[str] = set()
        seen: set[tuple[str, str]] = set()
        for ep in metadata.entry_points(group=GROUP):
            if (ep.name, ep.value) in seen:
                continue
            seen.add((ep.name, ep.value))
            dist = ep.dist
            dist_name = dist.name if dist is not None else None
            self.installed[ep.name] = dist_name
            if wanted is not None:
                matched.update({ep.name, _canonical(dist_name)} & wanted)
                if ep.name not in wanted and _canonical(dist_name) not in wanted:
                    continue
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist_name,
                version=dist.version if dist is not None else None,
            )
            try:
                plugin = ep.load()
            except Exception as exc:
                info.errors.append(f"error importing {ep.value!r}: {type(exc).__name__}: {exc}")
                self.infos[ep.name] = info
                self._log(f"failed to load {info.describe()}: {info.errors[-1]}")
                continue
            self.add(ep.name, plugin, info)
        if only is not None:
            self.unmatched = [n for n in only if n not in matched and _canonical(n) not in matched]

    def unmatched_message(self) -> str | None:
        """What to say about names in RNNLAB_LOAD_PLUGINS that match no installed plugin."""
        if not self.unmatched:
            return None
        names = ", ".join(repr(n) for n in self.unmatched)
        verb = "matches" if len(self.unmatched) == 1 else "match"
        installed = ", ".join(
            f"{ep} ({dist})" if dist else ep for ep, dist in sorted(self.installed.items())
        )
        return (
            f"RNNLAB_LOAD_PLUGINS names {names}, which {verb} no installed plugin; name entry "
            "points or distributions; installed entry points (distribution): "
            f"{installed or 'none (is rnnlab installed? `pip install -e .`)'}"
        )

    # -- calling hooks -------------------------------------------------------------------------
    def call_each(
        self,
        hook: str,
        kwargs: Callable[[PluginInfo], dict[str, Any]],
        after: Callable[[PluginInfo], None] | None = None,
    ) -> None:
        """Call ``hook`` on every plugin separately, in registration order, with the arguments
        ``kwargs(plugin)`` gives, then ``after(plugin)``; an exception is recorded on its
        plugin, never raised."""
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            info = self.infos[impl.plugin_name]
            args = kwargs(info)
            self._log(f"{hook}({', '.join(args)}) -> {info.describe()}")
            try:
                impl.function(*[args[a] for a in impl.argnames])
            except Exception as exc:
                info.errors.append(f"{hook} raised {type(exc).__name__}: {exc}")
                self._log(f"  raised {type(exc).__name__}: {exc}")
            if after is not None:
                after(info)

    def add_commands(self, cli: Any) -> None:
        """``register_commands(cli)``; a plugin may add commands but never replace one."""
        before: dict[str, Any] = {}

        def arguments(info: PluginInfo) -> dict[str, Any]:
            before.clear()
            before.update(cli.commands)
            return {"cli": cli}

        def keep_existing(info: PluginInfo) -> None:
            for name, command in before.items():
                if cli.commands.get(name) is not command:
                    cli.commands[name] = command
                    info.errors.append(
                        f"register_commands: command {name!r} already exists; choose another name"
                    )

        self.call_each("register_commands", arguments, keep_existing)
        self.raise_if_strict()

    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self)
            if self.strict:  # any plugin error is fatal, a broken lazy reference too
                self._registry.resolve_all()
            self.raise_if_strict()
        return self._registry

    # -- errors --------------------------------------------------------------------------------
    def errors(self) -> list[str]:
        return [f"{info.describe()}: {err}" for info in self.infos.values() for err in info.errors]

    def raise_if_strict(self) -> None:
        unmatched = self.unmatched_message()
        errors = self.errors() + ([unmatched] if unmatched else [])
        if self.strict and errors:
            raise PluginError(
                "plugin errors (strict mode; unset RNNLAB_STRICT_PLUGINS / drop --strict-plugins "
                "to continue without the broken plugins):\n  " + "\n  ".join(errors)
            )

    def _log(self, message: str) -> None:
        if self.trace:
            print(f"rnnlab trace: {message}", file=sys.stderr)


class Registry:
    """Every registered cell, dataset and remedy, by kind and name.

    Building it calls the registration hooks; a class registered as a lazy reference is imported
    only when :meth:`get` (or :meth:`resolve_all`) asks for it.
    """

    def __init__(self, plugins: Plugins) -> None:
        self.entries: dict[str, dict[str, Registration]] = {k: {} for k in HOOKS}
        self.clashes: dict[tuple[str, str], list[PluginInfo]] = {}
        for kind, hook in HOOKS.items():

            def arguments(info: PluginInfo, kind: str = kind) -> dict[str, Any]:
                return {"register": self._registrar(kind, info, plugins._log)}

            plugins.call_each(hook, arguments)

    def _registrar(
        self, kind: str, info: PluginInfo, log: Callable[[str], None]
    ) -> Callable[[str, type | str], None]:
        def register(name: str, cls: type | str) -> None:
            shown = cls if isinstance(cls, str) else getattr(cls, "__qualname__", cls)
            log(f"  register({name!r}, {shown!r}) as a {kind}")
            problem = self._check(kind, name, cls)
            if problem:
                info.errors.append(f"registered {kind} {name!r} badly: {problem}")
                return
            other = self.entries[kind].get(name)
            owners = self.clashes.get((kind, name))
            if other is not None or owners is not None:
                if other is not None:  # the name is nobody's now
                    other.plugin.registered[kind].remove(name)
                owners = owners or [other.plugin]  # type: ignore[union-attr]
                owners.append(info)
                self.clashes[(kind, name)] = owners
                self.entries[kind].pop(name, None)
                names = " and ".join(o.describe() for o in owners)
                for owner in owners:
                    owner.errors.append(f"{kind} {name!r} is registered by both {names}")
                return
            self.entries[kind][name] = Registration(kind, name, cls, info, log)
            info.registered.setdefault(kind, []).append(name)

        return register

    @staticmethod
    def _check(kind: str, name: str, cls: object) -> str | None:
        if not isinstance(name, str) or not _NAME.match(name):
            return f"names are lowercase words like 'my_cell', got {name!r}"
        if isinstance(cls, str):  # checked when it is loaded: checking imports it
            return _reference_problem(cls)
        return _class_problem(kind, cls)

    def resolve_all(self) -> None:
        """Load every lazy reference now; a failure is recorded on its plugin, never raised.
        Strict mode does this so that a broken reference fails before anything runs."""
        for kind, entries in self.entries.items():
            for name in entries:
                with contextlib.suppress(ConfigError):
                    self.get(kind, name)

    def names(self, kind: str) -> list[str]:
        """The registered names of ``kind``, sorted, less those that failed to load (imports
        nothing)."""
        return sorted(n for n, e in self.entries[kind].items() if e.problem is None)

    def get(self, kind: str, name: str) -> type:
        """The class registered as ``name``; a :class:`ConfigError` with the fix otherwise."""
        entry = self.entries[kind].get(name)
        if entry is not None:
            return entry.cls  # a lazy reference is imported and checked here
        owners = self.clashes.get((kind, name))
        if owners:
            names = " and ".join(o.describe() for o in owners)
            raise ConfigError(
                f"{kind} {name!r} is registered by both {names}; uninstall one of them or pick "
                f"one with RNNLAB_LOAD_PLUGINS"
            )
        for entry in self.entries[kind].values():  # never suggest a name that cannot load
            with contextlib.suppress(ConfigError):
                _ = entry.cls
        installed = ", ".join(self.names(kind)) or "none (is rnnlab installed? `pip install -e .`)"
        message = f"unknown {kind} {name!r}; installed {PLURALS[kind]}: {installed}."
        close = difflib.get_close_matches(str(name), self.names(kind), n=1)
        if close:
            message += f" Did you mean {close[0]!r}?"
        raise ConfigError(message)


def make_plugin_manager(
    *,
    load: Iterable[str] | None | str = "env",
    strict: bool | None = None,
    trace: bool | None = None,
    extra: Iterable[tuple[str, object]] = (),
    entry_points: bool = True,
) -> Plugins:
    """Build a plugin manager and load plugins.

    Args:
        load: names of entry points or distributions to load; ``"env"`` reads
            ``RNNLAB_LOAD_PLUGINS`` (unset: all, empty: none); None loads all.
        strict: turn plugin errors into :class:`PluginError` (default: RNNLAB_STRICT_PLUGINS).
        trace: log plugin activity to stderr (default: RNNLAB_TRACE_PLUGINS).
        extra: ``(name, plugin)`` pairs registered after the entry points (tests, scripts).
        entry_points: discover the ``rnnlab`` entry-point group at all.

    Example:
        >>> plugins = make_plugin_manager()
        >>> plugins.registry().get("cell", "lstm")
        <class 'rnnlab_cells.twins.LSTMCell'>
    """
    if load == "env":
        raw = os.environ.get("RNNLAB_LOAD_PLUGINS")
        names = None if raw is None else [n.strip() for n in raw.split(",") if n.strip()]
    else:
        names = None if load is None else list(load)
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(
        pm,
        strict=env_flag("RNNLAB_STRICT_PLUGINS") if strict is None else strict,
        trace=env_flag("RNNLAB_TRACE_PLUGINS") if trace is None else trace,
    )
    if entry_points:
        plugins.load_entry_points(names)
    for name, plugin in extra:
        plugins.add(name, plugin)
    plugins.raise_if_strict()
    return plugins
