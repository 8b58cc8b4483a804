"""``polyvae encode``."""
from __future__ import annotations

from pathlib import Path

import click

from polyvae.pipelines import api


@click.command("encode")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--data", "manifest", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help=".npy (array) or .csv (row, z0..); a 2-D plot is written beside it as .png")
@click.option("--no-plot", is_flag=True, help="Skip the 2-D plot.")
@click.option("--device", default="auto", show_default=True)
def command(run_dir: Path, manifest: Path, out_file: Path, no_plot: bool, device: str) -> None:
    """Latent means of every manifest row, in order (features, dimensionality reduction).

    \b
    Example:
      polyvae encode runs/mvae --data data/manifest.csv --out features.npy
    """
    run = api.load(run_dir, device=device)
    features = run.encode(manifest, out=out_file, plot=not no_plot, progress=True)
    click.echo(f"{out_file}  ({features.shape[0]} rows x {features.shape[1]} dims)")
    if not no_plot:
        click.echo(str(out_file.with_suffix(".png")))
