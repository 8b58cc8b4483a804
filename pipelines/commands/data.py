"""``polyvae data demo``: write the embedded demo dataset."""
from __future__ import annotations

from pathlib import Path

import click

from polyvae.pipelines import api


@click.group("data")
def command() -> None:
    """Datasets: the embedded demo data; your own voice recordings made into a manifest."""


@command.command("demo")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Seed of the synthetic voices and row order.")
@click.option("--size", type=click.IntRange(10, None), default=None,
              help="Number of rows (default: all 1797 digits).")
def demo(out_dir: Path, seed: int, size: int | None) -> None:
    """Write the demo dataset (handwritten digits, their words, sung digits) to OUT_DIR.

    No download: the digits are scikit-learn's bundled set; the singing is synthesised.

    \b
    Example:
      polyvae data demo data/ --size 500
    """
    click.echo(str(api.demo_data(out_dir, seed=seed, size=size, progress=True)))


@command.command("voices")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for clips/<speaker>/*.wav and manifest.csv.")
@click.option("--min-seconds", type=float, default=0.6, show_default=True, help="Shortest utterance kept.")
@click.option("--max-seconds", type=float, default=10.0, show_default=True,
              help="Longer stretches of speech are split at their quietest moment.")
@click.option("--sample-rate", type=click.IntRange(1000, 768000), default=None,
              help="Resample the utterances to this rate. [default: each file's own]")
@click.option("--loudness", type=float, default=-23.0, show_default=True,
              help="Speech level every utterance is brought to, dBFS.")
@click.option("--vad-aggressiveness", type=click.IntRange(0, 3), default=2, show_default=True,
              help="Voice-activity detector: 0 keeps the most, 3 drops the most.")
def voices(folder: Path, out_dir: Path, min_seconds, max_seconds, sample_rate, loudness, vad_aggressiveness) -> None:
    """Make FOLDER/<speaker>/<recordings> into utterances and a manifest.

    Every file (any format and rate soundfile reads, any length) is cut where a voice-activity
    detector hears speech, each utterance is brought to the same loudness and written under
    OUT/clips/<speaker>/; OUT/manifest.csv lists them with their speaker (and a text column
    when a recording has a transcript beside it, name.txt, and is one utterance).

    \b
    Example:
      polyvae data voices recordings/ --out voices/
      polyvae train runs/voices --data voices/manifest.csv --modalities audio
      polyvae voice-match runs/voices me.wav
    """
    report = api.voice_data(folder, out_dir, min_seconds=min_seconds, max_seconds=max_seconds,
                            sample_rate=sample_rate, loudness=loudness, vad_aggressiveness=vad_aggressiveness,
                            progress=True)
    for name, (n, seconds) in report.per_speaker().items():
        click.echo(f"{name}: {n} utterance(s), {seconds:.1f} s", err=True)
    for line in report.skipped[:20]:
        click.echo(f"skipped: {line}", err=True)
    if len(report.skipped) > 20:
        click.echo(f"skipped: ... and {len(report.skipped) - 20} more", err=True)
    for line in report.warnings():
        click.echo(f"Warning: {line}", err=True)
    click.echo(str(report.manifest))
