"""``polyvae demo``."""
from __future__ import annotations

from pathlib import Path

import click



@click.command("demo")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path), default="demo-out")
@click.option("--size", type=click.IntRange(10, None), default=None, help="Rows of demo data (default all 1797).")
@click.option("--epochs", type=click.IntRange(1, None), default=None, help="Training epochs. [default: 20]")
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def command(out_dir: Path, size, epochs, device, seed) -> None:
    """The main job end to end on the embedded demo data: data, training, generation,
    evaluation, voice interpolation and an HTML report, all under OUT_DIR.

    \b
    Example:
      polyvae demo demo-out/
    """
    from polyvae.pipelines import api
    result = api.demo(out_dir, size=size, epochs=epochs, device=device, seed=seed)
    coherence = result.evaluation.get("coherence", {})
    click.echo("coherence on held-out rows:")
    for group in coherence.values():
        for pair, value in group.items():
            click.echo(f"  {pair:<24} {value:.3f}")
    click.echo("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()))
    click.echo(f"run directory: {result.run_dir}")
    if result.report is not None:
        click.echo(f"report: {result.report}")
