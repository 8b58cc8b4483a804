"""The ``polyvae`` command line.

Commands live one per module in :mod:`polyvae.pipelines.commands`; plugins add more through
the ``polyvae_register_commands`` hook. Domain errors become one line on stderr and exit
code 2 here, and only here.
"""
from __future__ import annotations

import importlib
import sys

import click

from polyvae.core import __version__
from polyvae.core.errors import BadInput, PolyvaeError

#: modules that each define a click command (or group) named ``command``
COMMAND_MODULES: tuple[str, ...] = (
    "polyvae.pipelines.commands.plugins",
    "polyvae.pipelines.commands.data",
    "polyvae.pipelines.commands.train",
    "polyvae.pipelines.commands.generate",
    "polyvae.pipelines.commands.encode",
    "polyvae.pipelines.commands.evaluate",
    "polyvae.pipelines.commands.interpolate",
    "polyvae.pipelines.commands.anomalies",
    "polyvae.pipelines.commands.voice_match",
    "polyvae.pipelines.commands.voice_morph",
    "polyvae.pipelines.commands.demo",
    "polyvae.pipelines.commands.report",
)

EPILOG = """\b
Examples:
  polyvae data demo data/                       # the embedded demo dataset
  polyvae train runs/digits --data data/manifest.csv --epochs 20
  polyvae generate runs/digits --given text=seven --to image --n 4 --out gen/
  polyvae evaluate runs/digits --data data/manifest.csv --json
"""


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="polyvae")
def cli() -> None:
    """polyvae: multimodal autoencoders for image, text and audio, with plugins."""


def build_cli() -> click.Group:
    """Attach the built-in commands and those of installed plugins (idempotent)."""
    if getattr(cli, "_polyvae_built", False):
        return cli
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        cli.add_command(module.command)
    from polyvae.core.plugins import get_registry
    get_registry().manager.hook.polyvae_register_commands(cli=cli)
    cli._polyvae_built = True
    return cli


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the CLI and turns domain errors into exit code 2."""
    group = build_cli()
    try:
        group.main(args=argv, prog_name="polyvae", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except PolyvaeError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("Interrupted; the run directory keeps the last complete epoch (resume with --resume).", err=True)
        sys.exit(130)


__all__ = ["cli", "main", "BadInput"]
