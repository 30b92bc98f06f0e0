"""Developer sessions: ``nox`` runs tests, lint, typecheck; ``nox -s science`` the slow checks,
``nox -s plugin-e2e`` the example third-party plugin, ``nox -s mutants`` the planted defects,
``nox -s bench`` the benchmarks."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

# A CPU build of torch: plain "torch" would pull a multi-GB CUDA build on Linux.
TORCH = os.environ.get("RNNLAB_TORCH", "torch==2.13.0")
TYPED = ["rnnlab", "plugins/rnnlab_cells", "plugins/rnnlab_tasks", "plugins/rnnlab_remedies"]
EXAMPLE = "tests/example_plugin"
TYPED.append(f"{EXAMPLE}/rnnlab_example")
TYPED += ["benchmarks", "docs/make_results.py", "docs/replication"]


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
def soak(session: nox.Session) -> None:
    """The chaos soak (tests/test_soak.py, also in the slow CI step): ~100 tiny trials, 2 workers,
    worker and coordinator SIGKILLs; ``RNNLAB_SOAK_TRIALS`` / ``RNNLAB_SOAK_BUDGET_S`` size it."""
    _install(session)
    session.run(
        "python", "-m", "pytest", "-m", "slow", "-s", "tests/test_soak.py", *session.posargs
    )


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    _install(session)
    session.run("mypy", *TYPED)


@nox.session
def mutants(session: nox.Session) -> None:
    """Planted defects (tests/mutants/): each must make its test selection fail; prints which
    tests caught each. ``nox -s mutants -- --slow`` adds the slow selections, ``-- m03`` one."""
    _install(session)
    session.run("python", "-m", "tests.mutants", *session.posargs)


@nox.session(name="plugin-e2e")
def plugin_e2e(session: nox.Session) -> None:
    """tests/example_plugin, pip-installed like any third-party plugin: its own tests, then
    discovery by `rnnlab plugins` and a sweep that uses its cell, task and remedy."""
    _install(session)
    session.install(EXAMPLE)  # a real (non-editable) install through its entry point
    session.run("python", "-m", "rnnlab", "plugins")
    session.run("python", "-m", "pytest", "tests/test_example_plugin.py", *session.posargs)
    session.chdir(EXAMPLE)
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", "tests", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against raw PyTorch, MLflow and Optuna; writes docs/performance.md."""
    _install(session)
    session.run("python", "-m", "benchmarks.run", *session.posargs)
