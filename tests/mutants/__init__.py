"""Planted defects that the fast suite must catch: one module per defect (``nox -s mutants``).

Each module plants one defect by monkeypatching (robust to code moving inside a function, unlike
a textual patch) and is a pytest plugin: ``python -m pytest -p tests.mutants.<module> ...``
applies it before any test runs. Its docstring's first line says what it breaks; ``SELECTION``
holds the pytest arguments (files, ``-k``) that must fail under it. ``python -m tests.mutants``
runs every module's selection with its defect planted and prints which tests caught it
(docs/testing.md: "Planted defects").

A module defines ``apply()`` (idempotent; it must raise if what it patches no longer exists, so
that a defect that no longer applies is reported as an error, not as caught) and may set
``SUBPROCESSES = True`` (its selection runs rnnlab in spawned processes, which then apply it
too, through a ``sitecustomize`` on ``PYTHONPATH``) and ``SLOW = True`` (its selection is slow:
only ``python -m tests.mutants --slow`` runs it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_applied: set[str] = set()


def swap(owner: Any, name: str, make: Callable[[Any], Any], key: str | None = None) -> None:
    """Replace ``owner.name`` by ``make(original)``, once per ``key`` (default: owner.name).
    An AttributeError here means the code the defect targets has moved: update the mutant."""
    key = key or f"{getattr(owner, '__qualname__', getattr(owner, '__name__', owner))}.{name}"
    if key in _applied:
        return
    original = getattr(owner, name)
    setattr(owner, name, make(original))
    _applied.add(key)
