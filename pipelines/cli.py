"""The ``polyvae`` command line.

Commands live one per module in :mod:`polyvae.pipelines.commands`; plugins add more through
the ``polyvae_register_commands`` hook. Domain errors become one line on stderr and exit
code 2 here, and only here.

Start-up stays under a second for ``--help``, ``--version`` and ``plugins``: the command
modules and the API import torch and the plugins only inside the commands that need them,
and plugin commands are listed from the plugin index (:mod:`polyvae.core.plugin_index`)
and attached, by loading the plugins, only when one of them runs.
"""
from __future__ import annotations

import importlib
import os
import sys
import warnings

import click

from polyvae.core import __version__
from polyvae.core.errors import BadInput, PolyvaeError, PolyvaeWarning

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


#: commands that need neither torch nor the plugins' classes (no "starting" note)
LIGHT_COMMANDS = frozenset({"plugins"})


class PolyvaeGroup(click.Group):
    """The root group: built-in commands attached up front, plugin commands on demand."""

    _plugins_attached = False

    def _plugin_commands(self) -> dict[str, str]:
        """Name -> short help of the commands plugins add (from the index: nothing imported)."""
        from polyvae.core.plugin_index import plugin_index
        return {c.name: c.help for c in plugin_index().commands}

    def attach_plugin_commands(self) -> None:
        """Load the plugins and let them add their commands (once)."""
        if not self._plugins_attached:
            from polyvae.core.plugins import get_registry
            get_registry().manager.hook.polyvae_register_commands(cli=self)
            self._plugins_attached = True

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self._plugin_commands()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in self._plugin_commands():
            self.attach_plugin_commands()
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        plugin = {n: h for n, h in self._plugin_commands().items() if n not in self.commands}
        names = [*self.commands, *plugin]
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)      # as click's own listing
        rows = [(n, c.get_short_help_str(limit)) for n, c in self.commands.items() if not c.hidden]
        rows += list(plugin.items())
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        if name not in LIGHT_COMMANDS and not ({"-h", "--help"} & set(rest)):
            from .ui import starting
            starting(name)
        return name, command, rest


@click.group(cls=PolyvaeGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="polyvae")
def cli() -> None:
    """polyvae: multimodal autoencoders for image, text and audio, with plugins."""


def build_cli() -> click.Group:
    """Attach the built-in commands (idempotent); plugin commands come when one is run."""
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
    cli._polyvae_built = True
    return cli


def _one_line_warnings(show_other):
    """A ``warnings.showwarning`` that prints polyvae's own warnings as one line on stderr
    and hands any other to ``show_other``."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, PolyvaeWarning):
            click.echo(f"Warning: {message}", err=True)
        else:
            show_other(message, category, filename, lineno, file, line)
    return show


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the CLI and turns domain errors into exit code 2."""
    group = build_cli()
    with warnings.catch_warnings():
        # every warning, every time (not once per place); under torchrun rank 0 speaks for all
        warnings.simplefilter("always" if os.environ.get("RANK", "0") == "0" else "ignore", PolyvaeWarning)
        warnings.showwarning = _one_line_warnings(warnings.showwarning)
        _run(group, argv)


def _run(group: click.Group, argv: list[str] | None) -> None:
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
