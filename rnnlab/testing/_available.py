"""The plugins the contract suites see: the installed ones RNNLAB_LOAD_PLUGINS lets load, less
what cannot load, which the suites leave out and say so.

A suite tests one class; the classes it uses alongside (``cell_name``, ``dataset_name``) come
from the installed plugins. Someone else's broken plugin must not fail it: every lazy reference
is loaded when a registry is built (so which names exist never depends on test order), a plugin
that cannot load is named in a :class:`PluginSkipWarning`, and a test whose class alongside is
unavailable is skipped with the reason (a name no installed plugin registers at all still fails:
that is a typo in the test).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Iterable

import pytest

import rnnlab
from rnnlab._names import HOOKS, PLURALS
from rnnlab.errors import ConfigError
from rnnlab.plugins import Plugins, Registry, make_plugin_manager

UNDER_TEST = "under-test"
LOAD_ENV = "RNNLAB_LOAD_PLUGINS"


class PluginSkipWarning(UserWarning):
    """A plugin (or one of its classes) that the contract suites leave out: it cannot load."""


class _Plugin:
    def __repr__(self) -> str:
        return f"plugin_registering{self.__dict__.get('args')}"


def plugin_registering(kind: str, name: str, cls: type) -> object:
    """A plugin object whose ``register_<kind>s`` hook registers ``cls`` as ``name``.

    Example:
        >>> make_plugin_manager(extra=[("mine", plugin_registering("cell", "mine", MyCell))])
    """
    if kind not in HOOKS:
        raise ValueError(f"kind must be one of {', '.join(HOOKS)}, got {kind!r}")

    def register_one(register: Callable[[str, type], None]) -> None:
        register(name, cls)

    plugin = _Plugin()
    plugin.__dict__.update(args=(kind, name, cls), **{HOOKS[kind]: rnnlab.hookimpl(register_one)})
    return plugin


_told: set[str] = set()


def _loaded(plugins: Plugins, own: Iterable[str] = ()) -> Registry:
    """``plugins``' registry with every lazy reference loaded; the errors of plugins other than
    ``own`` are told once per process, as a :class:`PluginSkipWarning`."""
    registry = plugins.registry()
    registry.resolve_all()  # a broken reference drops out now, not in whichever test meets it
    mine = set(own)
    for name, info in plugins.infos.items():
        for error in info.errors if name not in mine else ():
            line = f"{info.describe()}: {error}"
            if line not in _told:
                _told.add(line)
                warnings.warn(
                    f"rnnlab.testing leaves out what cannot load: {line}",
                    PluginSkipWarning,
                    stacklevel=3,
                )
    return registry


@functools.cache
def _installed(load: str | None) -> Registry:
    return _loaded(make_plugin_manager(load="env", strict=False, trace=False))


def installed_registry() -> Registry:
    """The registry of the installed plugins that RNNLAB_LOAD_PLUGINS lets load (all when it is
    unset), every lazy reference loaded; what cannot load is left out with a
    :class:`PluginSkipWarning` naming it. Built once per process and setting."""
    return _installed(os.environ.get(LOAD_ENV))


@functools.cache
def _everything() -> Registry:
    """Every installed plugin's names, whatever RNNLAB_LOAD_PLUGINS says (nothing imported)."""
    return make_plugin_manager(load=None, strict=False, trace=False).registry()


def registry_with(
    kind: str, cls: type, name: str = UNDER_TEST, also: Iterable[tuple[str, str, type]] = ()
) -> Registry:
    """The installed plugins (as :func:`installed_registry` sees them) plus ``cls`` registered as
    ``name`` (and each ``(kind, name, cls)`` of ``also``); fails on a bad registration."""
    wanted = [(kind, name, cls), *also]
    extra = [(n, plugin_registering(k, n, c)) for k, n, c in wanted]
    plugins = make_plugin_manager(load="env", strict=False, trace=False, extra=extra)
    registry = _loaded(plugins, own=[n for _, n, _ in wanted])
    for _, n, c in wanted:
        if plugins.infos[n].errors:
            pytest.fail(f"registering {c.__qualname__}: {'; '.join(plugins.infos[n].errors)}")
    return registry


def needed(registry: Registry, kind: str, name: str, attribute: str) -> type:
    """The class ``name`` of ``kind`` that a suite uses beside the class under test (the suite's
    ``attribute``, e.g. ``cell_name``).

    Skips the test, saying why, when the class is installed but unavailable: its plugin cannot
    load it, two plugins claim the name, or RNNLAB_LOAD_PLUGINS leaves its plugin out. Fails
    when no installed plugin registers the name at all (a typo in the test class).
    """
    try:
        return registry.get(kind, name)
    except ConfigError as exc:
        reason = str(exc)
    owners = [e.plugin.describe() for e in [_everything().entries[kind].get(name)] if e]
    if name in registry.entries[kind] or (kind, name) in registry.clashes:
        pytest.skip(f"{attribute} = {name!r} is unavailable: {reason}")
    if owners:
        load = os.environ.get(LOAD_ENV)
        pytest.skip(
            f"{attribute} = {name!r}: {LOAD_ENV}={load!r} leaves out {owners[0]}, which "
            f"registers {kind} {name!r}; add it to {LOAD_ENV}, or set {attribute} to one of the "
            f"loaded {PLURALS[kind]}: {', '.join(registry.names(kind)) or 'none'}"
        )
    pytest.fail(f"{attribute} = {name!r}: {reason}")
