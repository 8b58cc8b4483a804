"""``polyvae data demo``: write the embedded demo dataset."""
from __future__ import annotations

from pathlib import Path

import click

from polyvae.pipelines import api


@click.group("data")
def command() -> None:
    """Datasets: the embedded demo data."""


@command.command("demo")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Seed of the synthetic voices and row order.")
@click.option("--size", type=click.IntRange(10, None), default=None,
              help="Number of rows (default: all 1797 digits).")
def demo(out_dir: Path, seed: int, size: int | None) -> None:
    """Write the demo dataset (handwritten digits, their words, sung digits) to OUT_DIR.

    No download: the digits are scikit-learn's bundled set; the singing is synthesised.

    \b
    Example:
      polyvae data demo data/ --size 500
    """
    click.echo(str(api.demo_data(out_dir, seed=seed, size=size, progress=True)))
