"""``polyvae report``."""
from __future__ import annotations

from pathlib import Path

import click

from polyvae.pipelines import api


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file to write. [default: RUN_DIR/report.html]")
@click.option("--data", "manifest", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Manifest whose rows the examples come from. [default: the run's training manifest]")
@click.option("--interpolation", "interpolations", multiple=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of step_*.png/wav (+ path.json) to show with a slider. Repeatable; "
                   "RUN_DIR/interpolation/*/ are picked up on their own.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda")
def command(run_dir: Path, out, manifest, interpolations, seed, device) -> None:
    """Write a self-contained HTML page of a run and print its path.

    One file with everything embedded (no network): the metrics table, the training plots,
    a latent scatter that shows each example on hover, generation from each modality to the
    others (with audio players), interpolation paths with a step slider, and the config.

    \b
    Examples:
      polyvae report runs/mvae                       # writes runs/mvae/report.html
      polyvae report runs/mvae --out mvae.html --data data/test.csv
      polyvae report runs/mvae --interpolation voices/
    """
    path = api.load(run_dir, device=device).report(out, data=manifest, interpolations=interpolations,
                                                   seed=seed, progress=True)
    click.echo(str(path))
