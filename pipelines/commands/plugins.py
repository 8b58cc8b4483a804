"""``polyvae plugins``: what is installed."""
from __future__ import annotations

import click

from polyvae.pipelines import api
from polyvae.pipelines.ui import echo_json


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
def command(as_json: bool) -> None:
    """List installed plugins: name, kind, version, package.

    \b
    Example:
      polyvae plugins
      polyvae plugins --json
    """
    infos, errors = api.plugins(), api.plugin_errors()
    if as_json:
        echo_json({"plugins": [vars(i) for i in infos], "errors": errors})
        return
    rows = [("NAME", "KIND", "VERSION", "PACKAGE", "DESCRIPTION")]
    rows += [(i.name, i.kind, i.version, i.package, i.description) for i in infos]
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    for r in rows:
        click.echo("  ".join(r[c].ljust(widths[c]) for c in range(4)) + "  " + r[4])
    for err in errors:
        click.echo(err, err=True)
