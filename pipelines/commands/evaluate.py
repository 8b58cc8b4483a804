"""``polyvae evaluate``."""
from __future__ import annotations

from pathlib import Path

import click

from polyvae.pipelines import api
from polyvae.pipelines.ui import echo_json


def _print_table(result: dict, prefix: str = "") -> None:
    for key, value in result.items():
        if isinstance(value, dict):
            click.echo(f"{prefix}{key}:")
            _print_table(value, prefix + "  ")
        elif isinstance(value, list):
            for item in value:
                click.echo(f"{prefix}{key}: {item}")
        else:
            click.echo(f"{prefix}{key}: {value:.4f}" if isinstance(value, float) else f"{prefix}{key}: {value}")


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--data", "manifest", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
def command(run_dir: Path, manifest: Path, as_json: bool, seed: int, device: str) -> None:
    """ELBO, reconstruction per modality and cross-modal coherence of a trained run.

    Coherence (with a `label` column) is the share of generations that a classifier
    trained on real rows assigns to the source row's label. On the training manifest the
    figures are taken on the rows the run held out.

    \b
    Example:
      polyvae evaluate runs/mvae --data data/manifest.csv --json
    """
    result = api.load(run_dir, device=device).evaluate(manifest, seed=seed, progress=True)
    if as_json:
        echo_json(result)
    else:       # the verdict's lines are on stderr already, as warnings
        _print_table({k: v for k, v in result.items() if k != "verdict"})
