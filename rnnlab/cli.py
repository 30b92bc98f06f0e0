"""The ``rnnlab`` command line: parses arguments and calls :mod:`rnnlab.commands`, nothing more.

Only click and the plugin loader are imported at start-up: torch, mlflow and optuna load inside
the commands that need them, so ``rnnlab --help`` answers at once.
"""

from __future__ import annotations

import functools
import gc
import sys
from typing import Any

import click

from rnnlab._names import KINDS
from rnnlab.errors import RnnlabError

_PLUGINS = "rnnlab.plugins"


@functools.cache
def _failure(exit_code: int) -> type[click.ClickException]:
    # click 8.5 declares ClickException.exit_code a ClassVar: one subclass per exit code
    return type(f"Failed{exit_code}", (click.ClickException,), {"exit_code": exit_code})


def _failed(error: RnnlabError) -> click.ClickException:
    """An :class:`RnnlabError` shown as ``Error: ...`` with its own exit code."""
    return _failure(error.exit_code)(str(error))


def plugins_of(ctx: click.Context) -> Any:
    """The plugin manager of this invocation (built once, on first use)."""
    from rnnlab.plugins import make_plugin_manager

    root = ctx.find_root()
    if _PLUGINS not in root.meta:
        strict = root.params.get("strict_plugins") or None
        try:
            root.meta[_PLUGINS] = make_plugin_manager(strict=strict)
        except RnnlabError as exc:
            raise _failed(exc) from None
    return root.meta[_PLUGINS]


def plugin_commands(plugins: Any, builtin: click.Group) -> dict[str, click.Command]:
    """The commands plugins add (``register_commands``), next to ``builtin``'s, never over them."""
    scratch = click.Group(commands=dict(builtin.commands))
    plugins.add_commands(scratch)
    return {n: c for n, c in scratch.commands.items() if n not in builtin.commands}


class RnnlabGroup(click.Group):
    """Adds plugin commands lazily, per invocation, and turns errors into clean exits."""

    def _plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        root = ctx.find_root()
        if "rnnlab.commands" not in root.meta:
            try:
                root.meta["rnnlab.commands"] = plugin_commands(plugins_of(ctx), self)
            except RnnlabError as exc:
                raise _failed(exc) from None
        commands: dict[str, click.Command] = root.meta["rnnlab.commands"]
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugin_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        return command if command is not None else self._plugin_commands(ctx).get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RnnlabError as exc:
            raise _failed(exc) from None


@click.group(cls=RnnlabGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--strict-plugins",
    is_flag=True,
    help="Fail on any plugin error (also RNNLAB_STRICT_PLUGINS=1) instead of skipping it.",
)
@click.version_option(package_name="rnnlab")
def cli(strict_plugins: bool) -> None:
    """rnnlab: measure vanishing and exploding gradients in recurrent networks.

    \b
    rnnlab plugins                 every cell, dataset and remedy installed
    rnnlab run experiments/adding.yaml --set cell.name=rnn
    mlflow ui                      then open http://127.0.0.1:5000
    """


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, value parsed as YAML: --set train.lr=0.01 (repeatable).",
)
@click.option("--no-track", is_flag=True, help="Do not record the run in MLflow.")
@click.option(
    "--tracking-uri",
    metavar="URI",
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db).",
)
@click.pass_context
def run(
    ctx: click.Context,
    config: str,
    overrides: tuple[str, ...],
    no_track: bool,
    tracking_uri: str | None,
) -> None:
    """Train one configuration and record it in MLflow."""
    from rnnlab import commands

    def registry() -> Any:  # loaded once the MLflow helper has started (commands.run_file)
        plugins = plugins_of(ctx)
        loaded = plugins.registry()
        commands.warn_plugin_errors(plugins)  # after registering: those errors count too
        return loaded

    code = commands.run_file(registry, config, overrides, not no_track, tracking_uri)
    ctx.exit(code)


@cli.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a key of the sweep file, value parsed as YAML (repeatable).",
)
@click.option(
    "--storage",
    metavar="URL",
    help="Optuna storage URL or *.journal file (default: ./rnnlab-optuna.journal).",
)
@click.option(
    "--workers", type=click.IntRange(min=1), help="Parallel trials (default: sweep.workers)."
)
@click.option("--gpus", metavar="0,2", help="GPUs to use, one trial at a time on each.")
@click.option("--dry-run", is_flag=True, help="Print the plan and start nothing.")
@click.option("--fresh", is_flag=True, help="Start a new study even if this sweep exists.")
@click.option("--tracking-uri", metavar="URI", help="MLflow tracking URI (default as for run).")
@click.option(
    "--heartbeat",
    type=click.IntRange(min=1),
    metavar="SECONDS",
    help="Database storages: seconds between heartbeats of running trials (default 30); a "
    "trial without one for 3 intervals is failed and run again by another coordinator.",
)
@click.pass_context
def sweep(
    ctx: click.Context,
    sweep_file: str,
    overrides: tuple[str, ...],
    storage: str | None,
    workers: int | None,
    gpus: str | None,
    dry_run: bool,
    fresh: bool,
    tracking_uri: str | None,
    heartbeat: int | None,
) -> None:
    """Train every combination of a sweep file (or an Optuna-guided sample) in parallel.

    Several machines join one sweep by running the same command with the same --storage (a
    database URL) and MLFLOW_TRACKING_URI (a tracking server): see docs/distributed.md."""
    from rnnlab import commands

    plugins = plugins_of(ctx)
    registry = plugins.registry()
    commands.warn_plugin_errors(plugins)
    ctx.exit(
        commands.sweep_file(
            registry,
            sweep_file,
            overrides,
            storage=storage,
            workers=workers,
            gpus=gpus,
            dry_run=dry_run,
            fresh=fresh,
            tracking_uri=tracking_uri,
            heartbeat=heartbeat,
        )
    )


@cli.command()
@click.argument("run_id")
@click.option("--k", "k", type=click.IntRange(min=1), help="Exponents per layer [min(width, 32)].")
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    help="Time steps to measure over, the task's sequences laid end to end [one sequence].",
)
@click.option(
    "--sequences", type=click.IntRange(min=1), default=32, show_default=True, help="Batch size."
)
@click.option("--seed", type=int, help="Seed of the fresh sequences [the run's seed + 1].")
@click.option("--tracking-uri", metavar="URI", help="MLflow store (default as for run).")
@click.pass_context
def dynamics(
    ctx: click.Context,
    run_id: str,
    k: int | None,
    steps: int | None,
    sequences: int,
    seed: int | None,
    tracking_uri: str | None,
) -> None:
    """Recompute a recorded run's Lyapunov spectra (from its model.pt) on fresh sequences."""
    from rnnlab import commands

    plugins = plugins_of(ctx)
    registry = plugins.registry()
    commands.warn_plugin_errors(plugins)
    code = commands.dynamics_of_run(
        registry,
        run_id,
        k=k,
        steps=steps,
        sequences=sequences,
        seed=seed,
        tracking_uri=tracking_uri,
    )
    ctx.exit(code)


@cli.command()
@click.argument("sweep", metavar="SWEEP_FILE_OR_NAME")
@click.option("--out", metavar="DIR", help="Where to write it (default: reports/NAME).")
@click.option("--open", "open_page", is_flag=True, help="Open the report in a browser.")
@click.option("--storage", metavar="URL", help="Optuna storage of the sweep (as for sweep).")
@click.option("--tracking-uri", metavar="URI", help="MLflow store (default: the sweep's).")
@click.pass_context
def report(
    ctx: click.Context,
    sweep: str,
    out: str | None,
    open_page: bool,
    storage: str | None,
    tracking_uri: str | None,
) -> None:
    """Write an HTML report of a finished or running sweep (also logged to its parent run)."""
    from rnnlab import commands

    plugins = plugins_of(ctx)
    ctx.exit(
        commands.report_sweep(
            plugins.registry(),
            plugins,
            sweep,
            out=out,
            storage=storage,
            tracking_uri=tracking_uri,
            open_page=open_page,
        )
    )


@cli.command()
@click.argument("sweep", required=False, metavar="[SWEEP]")
@click.option("--storage", metavar="URL", help="Optuna storage of the sweep (as for sweep).")
@click.option("--tracking-uri", metavar="URI", help="MLflow store (default: the sweep's).")
@click.pass_context
def runs(
    ctx: click.Context, sweep: str | None, storage: str | None, tracking_uri: str | None
) -> None:
    """List a sweep's trials: settings, seed, outcome, objective, run id (rnnlab.results).

    SWEEP is its file or name; without it, the one sweep in the storage."""
    from rnnlab import commands

    ctx.exit(commands.list_runs(sweep, storage=storage, tracking_uri=tracking_uri))


@cli.command()
@click.argument("sweep_name", required=False, metavar="[SWEEP]")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=5000,
    show_default=True,
    help="Port of the MLflow UI (optuna-dashboard, when installed, takes the next one).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind; only loopback unless you say otherwise.",
)
@click.option("--storage", metavar="URL", help="Optuna storage of the sweep (as for sweep).")
@click.option(
    "--tracking-uri", metavar="URI", help="MLflow store (default: the sweep's, else as for run)."
)
@click.pass_context
def ui(
    ctx: click.Context,
    sweep_name: str | None,
    port: int,
    host: str,
    storage: str | None,
    tracking_uri: str | None,
) -> None:
    """Open the MLflow UI (and optuna-dashboard) on a sweep's stores; Ctrl-C stops them."""
    from rnnlab import commands

    ctx.exit(
        commands.open_ui(
            sweep_name, port=port, host=host, storage=storage, tracking_uri=tracking_uri
        )
    )


@cli.command("new-plugin")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    required=True,
    help="What the plugin adds.",
)
@click.option(
    "--dir",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Folder in which to create the package folder rnnlab-NAME.",
)
def new_plugin_command(name: str, kind: str, directory: str) -> None:
    """Write a ready plugin package NAME (e.g. my-cell): pyproject, example, tests, README."""
    from rnnlab import commands

    target, written = commands.new_plugin(name, kind, directory)
    click.echo(f"created {target}:")
    for path in written:
        click.echo(f"  {path.relative_to(target)}")
    click.echo(commands.next_steps(target))


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool) -> None:
    """List installed plugins: what each registered, its version, and load errors."""
    from rnnlab import commands
    from rnnlab.plugins import env_flag, make_plugin_manager

    strict = bool(ctx.find_root().params.get("strict_plugins")) or env_flag("RNNLAB_STRICT_PLUGINS")
    plugins = make_plugin_manager(strict=False)  # list everything, broken plugins included
    plugin_commands(plugins, cli)  # records command errors too
    if strict:  # check every lazy reference too (imports them); plain listing imports none
        plugins.registry().resolve_all()
    commands.show_plugins(plugins, as_json)
    plugins.strict = strict
    plugins.raise_if_strict()  # strict: exit 2 once the listing is out


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: the process ends when it returns (or raises SystemExit)."""
    try:
        cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="rnnlab")
    finally:
        _before_exit()


def _before_exit() -> None:
    """Spare the exit the interpreter's final garbage collections over every object torch,
    MLflow and matplotlib made (1.3-1.8 s of each command's exit on a 2-core machine; issue 21:
    an eighth of ``rnnlab report`` on the flagship). Garbage that exists now is collected
    first, so its finalizers still run (files flush, connections close); what is still alive
    is frozen out of the collector (:func:`gc.freeze`), since the process ends here."""
    gc.collect()
    gc.freeze()
