"""``polyvae generate``."""
from __future__ import annotations

from pathlib import Path

import click

from polyvae.core.errors import UsageError
from polyvae.pipelines import api
from polyvae.pipelines.ui import parse_assignments, split_list


@click.command("generate")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--given", multiple=True, metavar="MOD=VALUE",
              help="A file path for image/audio, the text itself for text. Repeatable. None: prior samples.")
@click.option("--to", "targets", default=None, help="Comma-separated modalities to generate [default: all not given].")
@click.option("--n", "n", type=click.IntRange(1, 10_000), default=1, show_default=True, help="Samples per target.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for <modality>_<k>.<ext> files.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--mean", "use_mean", is_flag=True, help="Decode the posterior mean instead of samples.")
@click.option("--voice", default=None, metavar="SINGER",
              help="Sing the generated audio in this training singer's voice (see voice-match).")
@click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda")
def command(run_dir: Path, given, targets, n, out_dir, seed, use_mean, voice, device) -> None:
    """Generate modalities from others (or from the prior) with a trained run.

    \b
    Examples:
      polyvae generate runs/mvae --given text=seven --to image --n 4 --out gen/
      polyvae generate runs/mvae --given audio=clip.wav --to image,text --out gen/
      polyvae generate runs/mvae --n 8 --out prior/                 # prior samples
      polyvae generate runs/mvae --given text=seven --to audio --voice soprano_sofia --out sung/
      polyvae generate runs/dae --given image=noisy.png --to image --out clean/
    """
    pairs = parse_assignments(given, "--given")
    row = dict(pairs)
    if len(row) != len(pairs):
        raise UsageError("each modality can be given once")
    run = api.load(run_dir, device=device)
    out = run.generate(given=row or None, to=split_list(targets), n=n, seed=seed, sample=not use_mean,
                       voice=voice, out=out_dir)
    for p in out.files:
        click.echo(str(p))
