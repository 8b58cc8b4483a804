"""``polyvae voice-morph``."""
from __future__ import annotations

from pathlib import Path

import click

from polyvae.pipelines import api
from polyvae.pipelines.ui import echo_json
from polyvae.pipelines.voice import FRAME_SHARE, MAX_AMOUNT


@click.command("voice-morph")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("recording", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--toward", required=True, help="A singer of the run (see polyvae voice-match).")
@click.option("--amount", type=click.FloatRange(0.0, MAX_AMOUNT), default=0.5, show_default=True,
              help="0 keeps your voice, 1 takes the singer's; up to 2 goes past it (the "
                   "difference from your voice exaggerated), heard as the singer more often.")
@click.option("--frames", "frame_share", type=click.FloatRange(0.0, 1.0), default=FRAME_SHARE, show_default=True,
              help="Share of each converted frame taken from the singer's own recorded frames that say "
                   "the same thing (heard as the singer more often; 0: the decoder alone, which keeps "
                   "sung melodies and words a little better).")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output WAV file.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of a line.")
@click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda")
def command(run_dir: Path, recording: Path, toward: str, amount: float, frame_share: float, out_file: Path,
            as_json: bool, device: str) -> None:
    """Keep what RECORDING sings; move its voice part of the way toward a singer.

    \b
    Example:
      polyvae voice-morph runs/mvae my_voice.wav --toward soprano_sofia --amount 0.5 --out me_sofia.wav
      polyvae voice-morph runs/mvae my_voice.wav --toward soprano_sofia --amount 1.5 --out as_sofia.wav
      polyvae voice-morph runs/mvae my_song.wav --toward soprano_sofia --amount 1 --frames 0 --out sung.wav
    """
    result = api.load(run_dir, device=device).morph(recording, toward, amount, out=out_file, frames=frame_share,
                                                    progress=True)
    if as_json:
        echo_json(result.summary)
        return
    click.echo(str(result.path))
    click.echo(f"voice distance to {toward}: {result.distance_before:.2f} before, "
               f"{result.distance_after:.2f} after (amount {amount:g})", err=True)
