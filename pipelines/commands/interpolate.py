"""``polyvae interpolate``."""
from __future__ import annotations

from pathlib import Path

import click

from polyvae.core.device import resolve_device
from polyvae.core.errors import UsageError
from polyvae.core.run import load_run
from polyvae.pipelines.interpolation import interpolate_images

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@click.command("interpolate")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--from", "source", required=True, help="An image file, an audio file, or a singer name.")
@click.option("--to", "target", required=True, help="An image file, an audio file, or a singer name.")
@click.option("--steps", type=click.IntRange(2, 200), default=8, show_default=True)
@click.option("--path", "kind", type=click.Choice(["linear", "spherical"]), default="linear", show_default=True)
@click.option("--content", default=None, metavar="MOD=VALUE",
              help="What is sung while the voice moves (voice interpolation), e.g. text=seven.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--device", default="auto", show_default=True)
def command(run_dir, source, target, steps, kind, content, out_dir, device) -> None:
    """Walk the latent space from A to B and decode every step.

    Two image files interpolate images (convex combinations of their latent means).
    Singer names or audio files interpolate the voice while holding the content fixed.

    \b
    Examples:
      polyvae interpolate runs/mvae --from a.png --to b.png --steps 8 --out path/
      polyvae interpolate runs/mvae --from bass_boris --to soprano_sofia --content text=seven --out voices/
    """
    dev = resolve_device(device)
    run = load_run(run_dir, device=dev)
    if Path(source).suffix.lower() in IMAGE_SUFFIXES and Path(target).suffix.lower() in IMAGE_SUFFIXES:
        result = interpolate_images(run, source, target, steps, out_dir, kind, dev)
        for f in result.files:
            click.echo(str(f))
        click.echo(str(result.strip))
        click.echo(str(result.manifest))
        return
    try:
        from polyvae.pipelines.voice.interpolate import interpolate_voices
    except ImportError:
        raise UsageError("--from/--to must be two image files (voice interpolation needs the audio plugin)") from None
    for path in interpolate_voices(run, source, target, steps, out_dir, kind=kind, content=content, device=dev):
        click.echo(str(path))
