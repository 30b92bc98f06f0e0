"""Developer sessions: ``nox`` runs tests, lint, typecheck; ``nox -s science`` the slow checks."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

# A CPU build of torch: plain "torch" would pull a multi-GB CUDA build on Linux.
TORCH = os.environ.get("RNNLAB_TORCH", "torch==2.13.0")
TYPED = ["rnnlab", "plugins/rnnlab_cells", "plugins/rnnlab_tasks", "plugins/rnnlab_remedies"]


def _install(session: nox.Session) -> None:
    session.install(TORCH)
    session.install("-e", ".[test]")


@nox.session
def tests(session: nox.Session) -> None:
    """The fast suite (what CI and the README run)."""
    _install(session)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def science(session: nox.Session) -> None:
    """Slow scientific checks: qualitative results from the literature, minutes on a CPU."""
    _install(session)
    session.run("python", "-m", "pytest", "-m", "slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    _install(session)
    session.run("mypy", *TYPED)
