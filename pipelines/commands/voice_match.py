"""``polyvae voice-match``."""
from __future__ import annotations

from pathlib import Path

import click

from polyvae.pipelines import api
from polyvae.pipelines.ui import echo_json


@click.command("voice-match")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("recording", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON object: ranking [{singer, distance, similarity, percentile, same_voice}], "
                   "closest first; summary; evidence; calibration; features; differences.")
@click.option("--top", type=click.IntRange(1, None), default=None, help="Show only the closest N singers.")
@click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda")
def command(run_dir: Path, recording: Path, as_json: bool, top: int | None, device: str) -> None:
    """Rank the run's singers by how close RECORDING's voice is, and say how it differs.

    Closeness compares voice latents (distance in units of one singer's clip-to-clip spread;
    similarity = exp(-distance^2/2)). It is calibrated on the training clips: the percentile
    says how many of the other speakers' clips are farther from that singer, and a distance
    under the equal-error-rate threshold says "probably the same voice". Too short a
    recording, or two singers within its noise, gives "not enough evidence". The differences
    from the nearest singer are measured on the audio: median pitch and range, brightness,
    breathiness, vibrato.

    \b
    Examples:
      polyvae voice-match runs/mvae my_voice.wav
      polyvae voice-match runs/mvae my_voice.wav --json
    """
    result = api.load(run_dir, device=device).voice_match(recording, progress=True)
    ranking = result.ranking[:top] if top else result.ranking
    if as_json:
        echo_json({**result.to_json(), "ranking": ranking})
        return
    width = max(len("singer"), *(len(str(r["singer"])) for r in ranking))
    click.echo(f"{'rank':>4}  {'singer':<{width}}  {'distance':>8}  {'similarity':>10}  {'percentile':>10}")
    for i, r in enumerate(ranking, 1):
        pct = "" if r.get("percentile") is None else f"{r['percentile']:.1f}"
        click.echo(f"{i:>4}  {r['singer']:<{width}}  {r['distance']:>8.3f}  {r['similarity']:>10.3f}  {pct:>10}")
    click.echo(f"\n{result.summary()}")
    click.echo(f"How your voice differs from {result.nearest}'s:")
    for line in result.differences:
        click.echo(f"  - {line}")
