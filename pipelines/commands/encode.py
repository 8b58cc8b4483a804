"""``polyvae encode``."""
from __future__ import annotations

from pathlib import Path

import click

from polyvae.core.device import resolve_device
from polyvae.core.run import load_run
from polyvae.pipelines.encoding import encode_rows, plot_features, write_features
from polyvae.pipelines.run_data import read_rows


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
    dev = resolve_device(device)
    run = load_run(run_dir, device=dev)
    data = read_rows(run, manifest)
    features = encode_rows(run, data, device=dev)
    write_features(out_file, features, data.rows)
    click.echo(f"{out_file}  ({features.shape[0]} rows x {features.shape[1]} dims)")
    if not no_plot:
        click.echo(str(plot_features(out_file.with_suffix(".png"), features, data)))
