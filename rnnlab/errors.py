"""Exceptions the CLI turns into clear messages and exit codes (no torch import here)."""

from __future__ import annotations


class RnnlabError(Exception):
    """Base class: the message is meant for a person and is printed without a traceback."""

    exit_code = 1


class ConfigError(RnnlabError):
    """A config file or override is invalid. The message names file, line, key, value and fix."""

    exit_code = 2


class IncompatibleError(ConfigError):
    """A remedy cannot be combined with the chosen cell or with another remedy.

    ``problem`` is the reason without the file, line and hint (``remedy 'x' is incompatible
    with cell 'y': <reason>``): what a sweep records for the trial.
    """

    def __init__(self, message: str, problem: str | None = None) -> None:
        super().__init__(message)
        self.problem = problem if problem is not None else message


class PluginError(RnnlabError):
    """A plugin failed to load or registered something invalid (raised in strict mode)."""

    exit_code = 2


class SetupError(RnnlabError):
    """A plugin class raised while the run was being built; the message names it."""


class DataError(ConfigError):
    """A dataset's files are missing or malformed; the message says where to put them."""


class StorageError(RnnlabError):
    """A sweep's Optuna storage cannot be read as it is (a journal file corrupted before its last
    record); the message names the file, the line, the backup kept and the fix."""


class ArtifactError(RnnlabError):
    """An MLflow artifact location could not be written (full, read-only, not a folder); the
    message names the run, the path and the fix."""


class TrackingError(StorageError):
    """The MLflow tracking server could not be reached through MLflow's own retries (a store
    that is away, like an unreachable Optuna database); the message names the server, the run
    and what to check."""
