"""``polyvae anomalies``."""
from __future__ import annotations

from pathlib import Path

import click

from polyvae.pipelines import api
from polyvae.pipelines.ui import echo_json


@click.command("anomalies")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--data", "manifest", required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV of per-row scores [default: RUN/anomalies.csv].")
@click.option("--anomalous-label", default=None,
              help="Mark rows whose `label` is this value as anomalous (else an `anomaly` column is used).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.option("--device", default="auto", show_default=True)
def command(run_dir, manifest, out_file, anomalous_label, as_json, device) -> None:
    """Reconstruction-error anomaly scores for every manifest row (higher = more unusual).

    When the data says which rows are anomalous (an `anomaly` column of 1/0, or
    --anomalous-label), the ROC AUC of the scores is reported.

    \b
    Examples:
      polyvae train runs/ae --data normal/manifest.csv --model ae --modalities image
      polyvae anomalies runs/ae --data test/manifest.csv --anomalous-label 9
    """
    import numpy as np

    out_file = out_file or run_dir / "anomalies.csv"
    run = api.load(run_dir, device=device)
    result = run.anomalies(manifest, anomalous_label=anomalous_label, out=out_file, progress=True)
    order = np.argsort(-result.scores)
    summary = {"rows": len(result.rows), "scores": str(out_file), "roc_auc": result.auc,
               "most_anomalous_rows": [int(result.rows[i]) for i in order[:10]],
               "mean_score": float(np.nanmean(result.scores))}
    if as_json:
        echo_json(summary)
        return
    click.echo(f"scores: {out_file}  ({len(result.rows)} rows)")
    click.echo("most anomalous rows: " + ", ".join(str(r) for r in summary["most_anomalous_rows"]))
    if result.auc is not None:
        click.echo(f"ROC AUC: {result.auc:.3f}")
