"""``polyvae interpolate``."""
from __future__ import annotations

from pathlib import Path

import click

from polyvae.pipelines import api


@click.command("interpolate")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--from", "source", required=True, help="An image file, an audio file, or a singer name.")
@click.option("--to", "target", required=True, help="An image file, an audio file, or a singer name.")
@click.option("--steps", type=click.IntRange(2, 200), default=8, show_default=True)
@click.option("--path", "kind", type=click.Choice(["linear", "spherical"]), default="linear", show_default=True)
@click.option("--spacing", type=click.Choice(["even", "alpha"]), default="even", show_default=True,
              help="Voice paths: steps evenly spaced in how far the voice has moved, as the run's own voice "
                   "encoder hears them (even), or evenly in alpha.")
@click.option("--content", default=None, metavar="MOD=VALUE",
              help="What is sung while the voice moves (voice interpolation), e.g. text=seven.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--device", default="auto", show_default=True)
def command(run_dir, source, target, steps, kind, spacing, content, out_dir, device) -> None:
    """Walk the latent space from A to B and decode every step.

    Two image files interpolate images (convex combinations of their latent means).
    Singer names or audio files interpolate the voice while holding the content fixed.

    \b
    Examples:
      polyvae interpolate runs/mvae --from a.png --to b.png --steps 8 --out path/
      polyvae interpolate runs/mvae --from bass_boris --to soprano_sofia --content text=seven --out voices/
    """
    run = api.load(run_dir, device=device)
    result = run.interpolate(source, target, steps, path=kind, content=content, spacing=spacing, out=out_dir)
    for f in result.files:
        click.echo(str(f))
